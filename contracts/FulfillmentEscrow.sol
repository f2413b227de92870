// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {Strings} from "@openzeppelin/contracts/utils/Strings.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {EscrowTermsRules} from "./EscrowTermsRules.sol";
import {IArbitrator} from "./interfaces/IArbitrator.sol";
import {IFulfillmentEscrow} from "./interfaces/IFulfillmentEscrow.sol";

/// @title FulfillmentEscrow
/// @notice One escrow for many live-commerce orders, in ETH or allowlisted ERC-20s. A buyer's money
/// moves to the merchant only when performance is evidenced by someone other than the merchant: a
/// registered carrier's EIP-712 attestation or the buyer's own confirmation, then an inspection
/// window; or an arbitrator's ruling; or a timeout. Every order reaches a terminal state by timeouts
/// alone. Payouts are credited and pulled with {withdraw}.
///
/// @dev Security caveats — read before deploying or integrating:
/// - Carriers and arbitrators are trusted for what they sign and rule. A compromised carrier key can
///   attest a false shipment or delivery; the buyer's protection is then the inspection window and a
///   dispute. The admin registers carriers and publishes terms (which name the arbitrator), so the
///   admin role should be a multisig behind a timelock. The admin has no function that moves escrowed
///   funds, deposits or the reserve: it can only send *accrued fees* to the treasury.
/// - Terms (fees, windows, arbitrator, deposit ratio) are versioned; the merchant's offer names the
///   version it accepts and the order keeps it. Each order locks its own share of the merchant's
///   deposit at its version's ratio until it settles, so no later terms version frees or raises it.
/// - Only plain ERC-20s belong on the allowlist: no rebasing, no transfer hooks that call back, no
///   fee-on-transfer (inbound transfers that credit less than asked revert, but a token that later
///   starts charging fees or rebasing would break the books). A token that blocklists an account
///   blocks only that account's withdrawal (pull payments), never another party's.
/// - The `evidence` of a carrier step is committed by the carrier's signature; the `evidence`
///   argument of other permissionless steps (release, refund, settleReturn) is the submitter's
///   claim: verify each against the evidence log before relying on it.
/// - Prices fit 88 bits (about 3.1e26 base units) so an order packs into two storage slots.
/// - Relayers batch permissionless steps (carrier attestations, releases, timeout refunds and
///   settlements) through the separate, stateless {EscrowBatcher}; those steps are idempotent, so a
///   batch survives someone copying one of its attestations and submitting it first.
/// - Timestamps are compared with `block.timestamp`; validators can skew it by seconds, which is
///   negligible against windows of an hour or more.
/// - An arbitrator that rules synchronously inside `createDispute` is not supported (the re-entrant
///   `rule` call is rejected by the reentrancy guard); ERC-792 arbitrators rule later.
contract FulfillmentEscrow is IFulfillmentEscrow, AccessControl, EIP712, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    // ---------------------------------------------------------------------------------------------
    // Constants: hard bounds the admin cannot exceed
    // ---------------------------------------------------------------------------------------------

    uint256 private constant BPS = 10_000;
    uint32 internal constant MIN_INSPECTION_WINDOW = 1 hours;
    uint32 internal constant MAX_INSPECTION_WINDOW = 30 days;
    /// @notice Latest `shipBy` an offer may set, counted from funding.
    uint32 internal constant MAX_SHIP_DELAY = 180 days;
    /// @notice Lowest price, in base units: at any fee or reserve rate of at least 1 bps, a full
    /// release pays at least 1 unit of each, so neither rounds away on small orders.
    uint256 internal constant MIN_PRICE = BPS;

    /// @notice Ruling 0 (ERC-792 "refused to arbitrate"): split the price 50/50.
    uint256 public constant RULING_REFUSED = 0;
    /// @notice Ruling 1: refund the buyer in full.
    uint256 public constant RULING_REFUND = 1;
    /// @notice Ruling 2: release to the merchant in full.
    uint256 public constant RULING_RELEASE = 2;
    /// @notice Ruling 3: refund the buyer in full and compensate it from the merchant's deposit,
    /// then from the risk reserve, by the terms' `compensationBps` of the price.
    uint256 public constant RULING_FRAUD = 3;
    /// @notice Rulings 4 + b (b = 0..10000): the buyer gets b basis points of the price. Rulings
    /// are contiguous, so every ruling an ERC-792 arbitrator may give (0..RULING_OPTIONS) is valid.
    uint256 public constant RULING_SPLIT_BASE = 4;
    /// @notice Number of ruling options passed to `createDispute` (the highest valid ruling).
    uint256 public constant RULING_OPTIONS = RULING_SPLIT_BASE + BPS;

    bytes32 private constant OFFER_TYPEHASH = keccak256(
        "Offer(bytes32 orderId,address merchant,address buyer,address token,uint256 price,uint64 shipBy,uint32 inspectionWindow,bytes32 orderRecord,uint64 expiresAt,uint16 termsId)"
    );
    bytes32 private constant SHIPMENT_TYPEHASH =
        keccak256("Shipment(bytes32 orderId,string tracking,uint64 shippedAt,bytes32 evidence)");
    bytes32 private constant DELIVERY_TYPEHASH =
        keccak256("Delivery(bytes32 orderId,string tracking,uint64 deliveredAt,bytes32 evidence)");
    bytes32 private constant RETURN_SHIPMENT_TYPEHASH =
        keccak256("ReturnShipment(bytes32 orderId,string tracking,uint64 shippedAt,bytes32 evidence)");
    bytes32 private constant RETURN_DELIVERY_TYPEHASH =
        keccak256("ReturnDelivery(bytes32 orderId,string tracking,uint64 deliveredAt,bytes32 evidence)");

    // State masks for {_expect}: bit s set = state s accepted.
    uint256 private constant M_FUNDED = 1 << uint256(OrderState.Funded);
    uint256 private constant M_SHIPPED = 1 << uint256(OrderState.Shipped);
    uint256 private constant M_DELIVERED = 1 << uint256(OrderState.Delivered);
    uint256 private constant M_RETURNING = 1 << uint256(OrderState.Returning);
    uint256 private constant M_RETURN_SHIPPED = 1 << uint256(OrderState.ReturnShipped);
    uint256 private constant M_RETURN_DELIVERED = 1 << uint256(OrderState.ReturnDelivered);
    uint256 private constant M_DISPUTED = 1 << uint256(OrderState.Disputed);
    uint256 private constant M_IN_RETURN = M_RETURNING | M_RETURN_SHIPPED | M_RETURN_DELIVERED;
    uint256 private constant M_UNDISPUTED_OPEN = M_FUNDED | M_SHIPPED | M_DELIVERED | M_IN_RETURN;
    /// @dev States only a recorded delivery leads to (for {deliver}'s idempotence).
    uint256 private constant M_DELIVERED_SINCE = M_DELIVERED | M_IN_RETURN | 1 << uint256(OrderState.Released)
        | 1 << uint256(OrderState.Returned);

    // ---------------------------------------------------------------------------------------------
    // Storage
    // ---------------------------------------------------------------------------------------------

    /// @dev An order in exactly two slots (written once at funding: 2 x 22.1k gas; each later step
    /// rewrites slot 0 only). Layout, low to high bits:
    ///   slot 0: merchant (160) | tokenId (8) | state (8) | clock (40) | inspectionWindow (24) | termsId (16)
    ///   slot 1: buyer (160) | price (88) | pledged (8)
    /// Slot 0 holds all a carrier step needs (state, deadline clock, merchant for the signer check);
    /// slot 1 is read only when money moves; its `pledged` flag spares the lender lookup for the
/// (usual) unpledged order. `clock` is the timestamp the current state's deadline
    /// counts from (see {_deadline}); uint40 seconds last until the year 36812. The inspection
    /// window is bounded by 30 days < 2^24 s. The token is a registry id (see {_tokens}) so the
    /// order needs no third slot for a token address.
    struct Order {
        address merchant;
        uint8 tokenId;
        OrderState state;
        uint40 clock;
        uint24 inspectionWindow;
        uint16 termsId;
        address buyer;
        uint88 price;
        bool pledged;
    }

    /// @dev One slot per (token, account): a plain release updates the merchant's locked deposit
    /// and credit with a single write.
    struct Account {
        uint128 credit; // withdrawable
        uint128 locked; // deposit locked by the account's open orders as merchant (see {_lock})
    }

    /// @dev Per-token books; their sum equals the contract's balance of the token.
    ///   slot 0: escrowed | credits (both move on every settlement)
    ///   slot 1: fees | reserve (move on releases)
    ///   slot 2: deposits
    struct Book {
        uint128 escrowed;
        uint128 credits;
        uint128 fees;
        uint128 reserve;
        uint128 deposits;
    }

    struct TokenEntry {
        uint8 id; // 0 = never registered; 1 = ETH
        bool allowed;
    }

    struct ReturnRequest {
        uint96 amount;
        bytes32 trackingHash;
    }

    /// @dev slot 0: arbitrator (160) | openedAt (40) | opener (8) | answered (8) | openedIn (8);
    /// slot 1: disputeId.
    struct DisputeRecord {
        IArbitrator arbitrator;
        uint40 openedAt;
        Party opener;
        bool answered;
        OrderState openedIn;
        uint256 disputeId;
    }

    /// @notice The hard bounds of terms and deposit ratio, checked when the admin sets them.
    EscrowTermsRules public immutable termsRules;

    // Configuration: one slot read by every `fund`.
    address private _treasury;
    uint16 private _currentTermsId;
    uint16 private _depositRatioBps; // the current terms' ratio, cached here for `fund`
    uint8 private _tokenCount;

    mapping(bytes32 orderId => Order) private _orders;
    mapping(uint16 termsId => Terms) private _terms;
    mapping(address token => TokenEntry) private _tokens;
    mapping(uint8 tokenId => address token) private _tokenAddress;
    mapping(uint8 tokenId => Book) private _books;
    mapping(uint8 tokenId => mapping(address account => Account)) private _accounts;
    mapping(uint8 tokenId => mapping(address merchant => uint256 amount)) private _deposits;
    mapping(address carrier => bool registered) private _carriers;
    mapping(bytes32 trackingHash => bytes32 orderId) private _trackingOrders;
    mapping(bytes32 orderId => address lender) private _lenders;
    mapping(bytes32 orderId => ReturnRequest) private _returns;
    mapping(bytes32 orderId => DisputeRecord) private _disputes;
    mapping(IArbitrator arbitrator => mapping(uint256 disputeId => bytes32 orderId)) private _disputeOrders;

    /// @param rules The stateless contract holding the admin's hard bounds.
    /// @param admin Receives DEFAULT_ADMIN_ROLE.
    /// @param treasury_ Where accrued fees are sent.
    /// @param initialTerms Terms version 1.
    /// @param metaEvidence ERC-1497 meta-evidence URI of terms version 1.
    constructor(
        EscrowTermsRules rules,
        address admin,
        address treasury_,
        Terms memory initialTerms,
        string memory metaEvidence
    ) EIP712("FulfillmentEscrow", "1") {
        if (admin == address(0) || treasury_ == address(0) || address(rules).code.length == 0) {
            revert EscrowZeroAddress();
        }
        termsRules = rules;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _treasury = treasury_;
        emit TreasurySet(treasury_);
        _setTokenAllowed(address(0), true); // ETH is token id 1
        _setTerms(initialTerms, metaEvidence);
    }

    // ---------------------------------------------------------------------------------------------
    // Order lifecycle
    // ---------------------------------------------------------------------------------------------

    /// @inheritdoc IFulfillmentEscrow
    function fund(Offer calldata offer, bytes calldata merchantSignature) external payable nonReentrant {
        bytes32 orderId = offer.orderId;
        // The id is the merchant's: its first 20 bytes are the merchant's address.
        if (address(bytes20(orderId)) != offer.merchant) revert EscrowInvalidOrderId(orderId, offer.merchant);
        if (_orders[orderId].state != OrderState.None) revert EscrowOrderExists(orderId);
        (address buyer, uint8 tokenId) = _checkOffer(offer);
        bytes32 digest = _hashTypedDataV4(keccak256(abi.encode(OFFER_TYPEHASH, offer)));
        if (!SignatureChecker.isValidSignatureNowCalldata(offer.merchant, digest, merchantSignature)) {
            revert EscrowInvalidSignature(orderId, offer.merchant);
        }
        uint16 termsId = _currentTermsId;
        if (offer.termsId != termsId) revert EscrowTermsNotCurrent(orderId, offer.termsId, termsId);
        _addExposure(tokenId, offer.merchant, offer.price);
        _orders[orderId] = Order({
            merchant: offer.merchant,
            tokenId: tokenId,
            state: OrderState.Funded,
            clock: uint40(offer.shipBy),
            inspectionWindow: uint24(offer.inspectionWindow),
            termsId: termsId,
            buyer: buyer,
            price: uint88(offer.price),
            pledged: false
        });
        emit OrderFunded(orderId, offer.merchant, buyer, offer.token, offer.price, termsId, offer.orderRecord);
        _collect(offer.token, offer.price);
    }

    /// @inheritdoc IFulfillmentEscrow
    function ship(Shipment calldata shipment, bytes calldata carrierSignature) external nonReentrant {
        bytes32 orderId = shipment.orderId;
        Order storage order = _orders[orderId];
        (address carrier, bytes32 trackingHash) = _carrier(
            SHIPMENT_TYPEHASH, orderId, shipment.tracking, shipment.shippedAt, shipment.evidence, carrierSignature
        );
        if (order.state != OrderState.Funded) {
            // Already applied: this parcel is the order's outbound one (claimed only by `ship`).
            if (_trackingOrders[trackingHash] == orderId && _returns[orderId].trackingHash != trackingHash) return;
            _expect(orderId, order.state, M_FUNDED);
        }
        if (carrier == order.merchant) revert EscrowSignerIsParty(orderId, carrier);
        uint64 shipBy = order.clock;
        _checkTime(orderId, shipment.shippedAt, 0);
        if (shipment.shippedAt > shipBy || block.timestamp > shipBy) {
            revert EscrowLateShipment(orderId, shipment.shippedAt, shipBy);
        }
        _claimTracking(orderId, trackingHash);
        // The delivery window runs from when the shipment is recorded: a back-dated attestation
        // (an old waybill) can neither shorten it nor open the buyer's timeout refund early.
        order.state = OrderState.Shipped;
        order.clock = uint40(block.timestamp);
        emit OrderShipped(orderId, carrier, trackingHash, shipment.shippedAt, shipment.evidence);
    }

    /// @inheritdoc IFulfillmentEscrow
    function deliver(Delivery calldata delivery, bytes calldata carrierSignature) external nonReentrant {
        bytes32 orderId = delivery.orderId;
        Order storage order = _orders[orderId];
        (address carrier, bytes32 trackingHash) = _carrier(
            DELIVERY_TYPEHASH, orderId, delivery.tracking, delivery.deliveredAt, delivery.evidence, carrierSignature
        );
        OrderState state = order.state;
        if (state != OrderState.Shipped) {
            // Already applied: only a recorded delivery leads to these states, and the parcel is
            // the order's outbound one.
            if (
                (1 << uint256(state)) & M_DELIVERED_SINCE != 0 && _trackingOrders[trackingHash] == orderId
                    && _returns[orderId].trackingHash != trackingHash
            ) return;
            _expect(orderId, state, M_SHIPPED);
        }
        _requireOpen(orderId, _deadline(order, OrderState.Shipped));
        if (carrier == order.merchant) revert EscrowSignerIsParty(orderId, carrier);
        // In state Shipped the only tracking hash mapped to this order is its outbound parcel.
        if (_trackingOrders[trackingHash] != orderId) revert EscrowTrackingMismatch(orderId, trackingHash);
        _checkTime(orderId, delivery.deliveredAt, 0);
        // The inspection window runs from when the delivery is recorded, so a late or back-dated
        // attestation never shortens it.
        order.state = OrderState.Delivered;
        order.clock = uint40(block.timestamp);
        emit OrderDelivered(orderId, carrier, trackingHash, delivery.deliveredAt, delivery.evidence);
    }

    /// @inheritdoc IFulfillmentEscrow
    function confirmDelivery(bytes32 orderId, bytes32 evidence) external nonReentrant {
        Order storage order = _orders[orderId];
        _expect(orderId, order.state, M_SHIPPED);
        if (msg.sender != order.buyer) revert EscrowUnauthorizedCaller(orderId, msg.sender);
        order.state = OrderState.Delivered;
        order.clock = uint40(block.timestamp);
        emit OrderDelivered(orderId, msg.sender, bytes32(0), uint64(block.timestamp), evidence);
    }

    /// @inheritdoc IFulfillmentEscrow
    function release(bytes32 orderId, bytes32 evidence) external nonReentrant {
        Order storage order = _orders[orderId];
        OrderState state = order.state;
        if (state == OrderState.Released) return; // already applied (see {IFulfillmentEscrow-release})
        _expect(orderId, state, M_DELIVERED | M_RETURNING);
        _requirePassed(orderId, _deadline(order, state));
        order.state = OrderState.Released;
        (address payee, uint256 payout, uint256 fee, uint256 reserve) = _settle(orderId, order, 0);
        emit OrderReleased(orderId, payee, payout, fee, reserve, evidence);
    }

    /// @inheritdoc IFulfillmentEscrow
    function refund(bytes32 orderId, bytes32 evidence) external nonReentrant {
        Order storage order = _orders[orderId];
        OrderState state = order.state;
        if (state == OrderState.Refunded) return; // already applied
        _expect(orderId, state, M_FUNDED | M_SHIPPED);
        _requirePassed(orderId, _deadline(order, state));
        _refundInFull(orderId, order, evidence);
    }

    /// @inheritdoc IFulfillmentEscrow
    function cancel(bytes32 orderId, bytes32 evidence) external nonReentrant {
        Order storage order = _orders[orderId];
        _expect(orderId, order.state, M_UNDISPUTED_OPEN);
        _requireConsent(orderId, order);
        _refundInFull(orderId, order, evidence);
    }

    /// @inheritdoc IFulfillmentEscrow
    function requestReturn(bytes32 orderId, uint256 amount, bytes32 evidence) external nonReentrant {
        Order storage order = _orders[orderId];
        _expect(orderId, order.state, M_DELIVERED);
        if (msg.sender != order.buyer) revert EscrowUnauthorizedCaller(orderId, msg.sender);
        _requireOpen(orderId, _deadline(order, OrderState.Delivered));
        uint256 price = order.price;
        if (amount == 0 || amount > price) revert EscrowInvalidReturnAmount(orderId, amount, price);
        order.state = OrderState.Returning;
        order.clock = uint40(block.timestamp);
        _returns[orderId].amount = uint96(amount);
        emit ReturnRequested(orderId, amount, evidence);
    }

    /// @inheritdoc IFulfillmentEscrow
    function shipReturn(Shipment calldata shipment, bytes calldata carrierSignature) external nonReentrant {
        bytes32 orderId = shipment.orderId;
        Order storage order = _orders[orderId];
        (address carrier, bytes32 trackingHash) = _carrier(
            RETURN_SHIPMENT_TYPEHASH, orderId, shipment.tracking, shipment.shippedAt, shipment.evidence,
            carrierSignature
        );
        if (order.state != OrderState.Returning) {
            if (_returns[orderId].trackingHash == trackingHash) return; // already applied
            _expect(orderId, order.state, M_RETURNING);
        }
        _requireOpen(orderId, _deadline(order, OrderState.Returning));
        if (carrier == order.merchant || carrier == order.buyer) revert EscrowSignerIsParty(orderId, carrier);
        _checkTime(orderId, shipment.shippedAt, 0);
        _claimTracking(orderId, trackingHash);
        _returns[orderId].trackingHash = trackingHash;
        order.state = OrderState.ReturnShipped;
        order.clock = uint40(block.timestamp); // the return-delivery window, from recording
        emit ReturnShipped(orderId, carrier, trackingHash, shipment.shippedAt, shipment.evidence);
    }

    /// @inheritdoc IFulfillmentEscrow
    function deliverReturn(Delivery calldata delivery, bytes calldata carrierSignature) external nonReentrant {
        bytes32 orderId = delivery.orderId;
        Order storage order = _orders[orderId];
        (address carrier, bytes32 trackingHash) = _carrier(
            RETURN_DELIVERY_TYPEHASH, orderId, delivery.tracking, delivery.deliveredAt, delivery.evidence,
            carrierSignature
        );
        bool ownParcel = _returns[orderId].trackingHash == trackingHash;
        if (order.state != OrderState.ReturnShipped) {
            // Already applied, or the return was settled without it: either way this parcel's
            // step is behind the order.
            if (ownParcel && (order.state == OrderState.ReturnDelivered || order.state == OrderState.Returned)) {
                return;
            }
            _expect(orderId, order.state, M_RETURN_SHIPPED);
        }
        _requireOpen(orderId, _deadline(order, OrderState.ReturnShipped));
        if (carrier == order.merchant || carrier == order.buyer) revert EscrowSignerIsParty(orderId, carrier);
        if (!ownParcel) revert EscrowTrackingMismatch(orderId, trackingHash);
        _checkTime(orderId, delivery.deliveredAt, 0);
        order.state = OrderState.ReturnDelivered;
        order.clock = uint40(block.timestamp);
        emit ReturnDelivered(orderId, carrier, trackingHash, delivery.deliveredAt, delivery.evidence);
    }

    /// @inheritdoc IFulfillmentEscrow
    function confirmReturn(bytes32 orderId, bytes32 evidence) external nonReentrant {
        Order storage order = _orders[orderId];
        _expect(orderId, order.state, M_IN_RETURN);
        _requireConsent(orderId, order);
        _settleReturn(orderId, order, evidence);
    }

    /// @inheritdoc IFulfillmentEscrow
    function settleReturn(bytes32 orderId, bytes32 evidence) external nonReentrant {
        Order storage order = _orders[orderId];
        OrderState state = order.state;
        if (state == OrderState.Returned) return; // already applied
        _expect(orderId, state, M_RETURN_SHIPPED | M_RETURN_DELIVERED);
        _requirePassed(orderId, _deadline(order, state));
        _settleReturn(orderId, order, evidence);
    }

    /// @inheritdoc IFulfillmentEscrow
    function pledge(bytes32 orderId, address lender) external nonReentrant {
        Order storage order = _orders[orderId];
        _expect(orderId, order.state, M_UNDISPUTED_OPEN);
        address merchant = order.merchant;
        if (msg.sender != merchant) revert EscrowUnauthorizedCaller(orderId, msg.sender);
        if (lender == address(0) || lender == merchant || lender == address(this)) {
            revert EscrowInvalidLender(orderId, lender);
        }
        address existing = _lenders[orderId];
        if (existing != address(0)) revert EscrowAlreadyPledged(orderId, existing);
        _lenders[orderId] = lender;
        order.pledged = true;
        emit OrderPledged(orderId, merchant, lender);
    }

    // ---------------------------------------------------------------------------------------------
    // Disputes (ERC-792 arbitrable, ERC-1497 evidence)
    // ---------------------------------------------------------------------------------------------

    /// @inheritdoc IFulfillmentEscrow
    function openDispute(bytes32 orderId, bytes32 evidence) external payable nonReentrant returns (uint256 disputeId) {
        Order storage order = _orders[orderId];
        OrderState state = order.state;
        _expect(orderId, state, M_SHIPPED | M_DELIVERED | M_IN_RETURN);
        Party opener;
        if (msg.sender == order.buyer) {
            opener = Party.Buyer;
            _expect(orderId, state, M_DELIVERED | M_RETURNING);
        } else if (_merchantSide(orderId, order, msg.sender)) {
            opener = Party.Merchant;
            _expect(orderId, state, M_SHIPPED | M_IN_RETURN);
        } else {
            revert EscrowUnauthorizedCaller(orderId, msg.sender);
        }
        _requireOpen(orderId, _deadline(order, state));

        uint16 termsId = order.termsId;
        IArbitrator arbitrator = _terms[termsId].arbitrator;
        bytes memory extraData = _terms[termsId].arbitratorExtraData;
        uint256 cost = arbitrator.arbitrationCost(extraData);
        if (msg.value != cost) revert EscrowWrongValue(cost, msg.value);

        order.state = OrderState.Disputed;
        order.clock = uint40(block.timestamp);
        DisputeRecord storage record = _disputes[orderId];
        record.arbitrator = arbitrator;
        record.openedAt = uint40(block.timestamp);
        record.opener = opener;
        record.openedIn = state;
        // The arbitrator is fixed by the order's terms; re-entry is blocked by the guard and the
        // order is already Disputed. Its id is only known after the call, hence the writes below.
        disputeId = arbitrator.createDispute{value: cost}(RULING_OPTIONS, extraData);
        if (_disputeOrders[arbitrator][disputeId] != bytes32(0)) {
            revert EscrowDuplicateDispute(address(arbitrator), disputeId);
        }
        _disputeOrders[arbitrator][disputeId] = orderId;
        record.disputeId = disputeId;
        emit DisputeOpened(orderId, arbitrator, disputeId, msg.sender, evidence);
        emit Dispute(arbitrator, disputeId, termsId, uint256(orderId));
        emit Evidence(arbitrator, uint256(orderId), msg.sender, Strings.toHexString(uint256(evidence), 32));
    }

    /// @inheritdoc IFulfillmentEscrow
    function submitEvidence(bytes32 orderId, string calldata evidence) external nonReentrant {
        Order storage order = _orders[orderId];
        _expect(orderId, order.state, M_DISPUTED);
        Party party;
        if (msg.sender == order.buyer) party = Party.Buyer;
        else if (_merchantSide(orderId, order, msg.sender)) party = Party.Merchant;
        else revert EscrowUnauthorizedCaller(orderId, msg.sender);
        DisputeRecord storage record = _disputes[orderId];
        if (party != record.opener && !record.answered) {
            // The answer is due within the response window: a late one cannot take back the
            // default the opener may already claim (nor front-run the claim).
            _requireOpen(orderId, _deadline(order, OrderState.Disputed));
            record.answered = true;
            emit DisputeAnswered(orderId, msg.sender);
        }
        emit Evidence(record.arbitrator, uint256(orderId), msg.sender, evidence);
    }

    /// @inheritdoc IFulfillmentEscrow
    function claimDefault(bytes32 orderId) external nonReentrant {
        Order storage order = _orders[orderId];
        _expect(orderId, order.state, M_DISPUTED);
        DisputeRecord storage record = _disputes[orderId];
        Party opener = record.opener;
        bool mayClaim = opener == Party.Buyer ? msg.sender == order.buyer : _merchantSide(orderId, order, msg.sender);
        if (!mayClaim) revert EscrowUnauthorizedCaller(orderId, msg.sender);
        if (record.answered) revert EscrowRespondentAnswered(orderId);
        if (opener == Party.Merchant && record.openedIn != OrderState.Returning) {
            revert EscrowDefaultNeedsDelivery(orderId, record.openedIn);
        }
        _requirePassed(orderId, _deadline(order, OrderState.Disputed));
        _resolve(orderId, order, opener == Party.Buyer ? RULING_REFUND : RULING_RELEASE, Resolution.Default);
    }

    /// @inheritdoc IFulfillmentEscrow
    function timeoutDispute(bytes32 orderId) external nonReentrant {
        Order storage order = _orders[orderId];
        _expect(orderId, order.state, M_DISPUTED);
        _requirePassed(orderId, uint256(order.clock) + _terms[order.termsId].arbitrationWindow);
        _resolve(orderId, order, RULING_REFUSED, Resolution.ArbitratorTimeout);
    }

    /// @notice ERC-792: the arbitrator of a dispute gives its final ruling; see the RULING_*
    /// constants for the encoding. Only the arbitrator the dispute was created with can call it.
    /// @param disputeID The dispute's id in the calling arbitrator.
    /// @param ruling 0..3, or 4 + the buyer's share in basis points.
    function rule(uint256 disputeID, uint256 ruling) external nonReentrant {
        bytes32 orderId = _disputeOrders[IArbitrator(msg.sender)][disputeID];
        if (orderId == bytes32(0)) revert EscrowUnknownDispute(msg.sender, disputeID);
        Order storage order = _orders[orderId];
        _expect(orderId, order.state, M_DISPUTED);
        if (ruling > RULING_OPTIONS) revert EscrowInvalidRuling(disputeID, ruling);
        emit Ruling(IArbitrator(msg.sender), disputeID, ruling);
        _resolve(orderId, order, ruling, Resolution.Ruling);
    }

    // ---------------------------------------------------------------------------------------------
    // Money
    // ---------------------------------------------------------------------------------------------

    /// @inheritdoc IFulfillmentEscrow
    function depositFor(address merchant, address token, uint256 amount) external payable nonReentrant {
        if (merchant == address(0)) revert EscrowZeroAddress();
        if (merchant == address(this)) revert EscrowSelfTransfer();
        if (amount == 0) revert EscrowZeroAmount();
        uint8 tokenId = _allowedTokenId(token);
        _books[tokenId].deposits += SafeCast.toUint128(amount);
        _deposits[tokenId][merchant] += amount;
        emit DepositAdded(merchant, token, msg.sender, amount);
        _collect(token, amount);
    }

    /// @inheritdoc IFulfillmentEscrow
    function withdrawDeposit(address token, uint256 amount) external nonReentrant {
        if (amount == 0) revert EscrowZeroAmount();
        uint8 tokenId = _knownTokenId(token);
        uint256 have = _deposits[tokenId][msg.sender];
        uint256 need = _accounts[tokenId][msg.sender].locked;
        uint256 free = have > need ? have - need : 0;
        if (amount > free) revert EscrowDepositLocked(msg.sender, amount, free);
        _deposits[tokenId][msg.sender] = have - amount;
        _books[tokenId].deposits -= uint128(amount);
        emit DepositWithdrawn(msg.sender, token, amount);
        // The merchant pulls its own money; the books are final and re-entry is blocked.
        _send(token, msg.sender, amount);
    }

    /// @inheritdoc IFulfillmentEscrow
    function fundReserve(address token, uint256 amount) external payable nonReentrant {
        if (amount == 0) revert EscrowZeroAmount();
        uint8 tokenId = _allowedTokenId(token);
        _books[tokenId].reserve += SafeCast.toUint128(amount);
        emit ReserveFunded(token, msg.sender, amount);
        _collect(token, amount);
    }

    /// @inheritdoc IFulfillmentEscrow
    function withdraw(address token) external nonReentrant {
        _withdraw(token, msg.sender);
    }

    /// @inheritdoc IFulfillmentEscrow
    function withdrawTo(address token, address to) external nonReentrant {
        if (to == address(0)) revert EscrowZeroAddress();
        if (to == address(this)) revert EscrowSelfTransfer();
        _withdraw(token, to);
    }

    // ---------------------------------------------------------------------------------------------
    // Administration
    // ---------------------------------------------------------------------------------------------

    /// @inheritdoc IFulfillmentEscrow
    function setTerms(Terms calldata newTerms, string calldata metaEvidence)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
        returns (uint16 termsId)
    {
        return _setTerms(newTerms, metaEvidence);
    }

    /// @inheritdoc IFulfillmentEscrow
    function setCarrier(address carrier, bool registered) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (carrier == address(0)) revert EscrowZeroAddress();
        _carriers[carrier] = registered;
        emit CarrierSet(carrier, registered);
    }

    /// @inheritdoc IFulfillmentEscrow
    function setTokenAllowed(address token, bool allowed) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setTokenAllowed(token, allowed);
    }

    /// @inheritdoc IFulfillmentEscrow
    function setTreasury(address treasury_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (treasury_ == address(0)) revert EscrowZeroAddress();
        if (treasury_ == address(this)) revert EscrowSelfTransfer();
        _treasury = treasury_;
        emit TreasurySet(treasury_);
    }

    /// @inheritdoc IFulfillmentEscrow
    function withdrawFees(address token, uint256 amount) external onlyRole(DEFAULT_ADMIN_ROLE) nonReentrant {
        uint8 tokenId = _knownTokenId(token);
        Book storage book = _books[tokenId];
        uint256 accrued = book.fees;
        if (amount == 0 || amount > accrued) revert EscrowFeesExceeded(token, amount, accrued);
        book.fees = uint128(accrued - amount);
        address to = _treasury;
        emit FeesWithdrawn(token, to, amount);
        // Only accrued fees leave, to the treasury; the books are final and re-entry is blocked.
        _send(token, to, amount);
    }

    /// @inheritdoc IFulfillmentEscrow
    function sweep(address token) external nonReentrant {
        Book storage book = _books[_tokens[token].id];
        uint256 booked = uint256(book.escrowed) + book.credits + book.fees + book.reserve + book.deposits;
        uint256 held = token == address(0) ? address(this).balance : IERC20(token).balanceOf(address(this));
        if (held <= booked) revert EscrowNothingToSweep(token);
        address to = _treasury;
        emit Swept(token, to, held - booked);
        // Only what no book counts leaves, to the treasury; re-entry is blocked.
        _send(token, to, held - booked);
    }

    // ---------------------------------------------------------------------------------------------
    // Views
    // ---------------------------------------------------------------------------------------------

    /// @inheritdoc IFulfillmentEscrow
    function getOrder(bytes32 orderId) external view returns (OrderInfo memory info) {
        Order storage order = _orders[orderId];
        OrderState state = order.state;
        info = OrderInfo({
            merchant: order.merchant,
            buyer: order.buyer,
            token: _tokenAddress[order.tokenId],
            price: order.price,
            state: state,
            clock: order.clock,
            inspectionWindow: order.inspectionWindow,
            termsId: order.termsId,
            lender: _lenders[orderId],
            deadline: state == OrderState.Disputed && _disputes[orderId].answered
                ? uint256(order.clock) + _terms[order.termsId].arbitrationWindow
                : _deadline(order, state)
        });
    }

    /// @inheritdoc IFulfillmentEscrow
    function orderState(bytes32 orderId) external view returns (OrderState) {
        return _orders[orderId].state;
    }

    /// @inheritdoc IFulfillmentEscrow
    function lenderOf(bytes32 orderId) external view returns (address) {
        return _lenders[orderId];
    }

    /// @inheritdoc IFulfillmentEscrow
    function returnOf(bytes32 orderId) external view returns (uint256 amount, bytes32 trackingHash) {
        ReturnRequest storage request = _returns[orderId];
        return (request.amount, request.trackingHash);
    }

    /// @inheritdoc IFulfillmentEscrow
    function disputeOf(bytes32 orderId) external view returns (DisputeInfo memory) {
        DisputeRecord storage record = _disputes[orderId];
        return DisputeInfo({
            arbitrator: record.arbitrator,
            disputeId: record.disputeId,
            openedAt: record.openedAt,
            opener: record.opener,
            answered: record.answered,
            openedIn: record.openedIn
        });
    }

    /// @inheritdoc IFulfillmentEscrow
    function orderOfDispute(IArbitrator arbitrator, uint256 disputeId) external view returns (bytes32) {
        return _disputeOrders[arbitrator][disputeId];
    }

    /// @inheritdoc IFulfillmentEscrow
    function orderOfTracking(bytes32 trackingHash) external view returns (bytes32) {
        return _trackingOrders[trackingHash];
    }

    /// @inheritdoc IFulfillmentEscrow
    function totals(address token)
        external
        view
        returns (uint256 escrowed, uint256 deposits, uint256 reserve, uint256 fees, uint256 credits)
    {
        Book storage book = _books[_tokens[token].id];
        return (book.escrowed, book.deposits, book.reserve, book.fees, book.credits);
    }

    /// @inheritdoc IFulfillmentEscrow
    function creditOf(address token, address account) external view returns (uint256) {
        return _accounts[_tokens[token].id][account].credit;
    }

    /// @inheritdoc IFulfillmentEscrow
    function depositOf(address token, address merchant) external view returns (uint256 deposit, uint256 locked) {
        uint8 tokenId = _tokens[token].id;
        return (_deposits[tokenId][merchant], _accounts[tokenId][merchant].locked);
    }

    /// @inheritdoc IFulfillmentEscrow
    function terms(uint16 termsId) external view returns (Terms memory) {
        return _terms[termsId];
    }

    /// @inheritdoc IFulfillmentEscrow
    function currentTermsId() external view returns (uint16) {
        return _currentTermsId;
    }

    /// @inheritdoc IFulfillmentEscrow
    function treasury() external view returns (address) {
        return _treasury;
    }

    /// @inheritdoc IFulfillmentEscrow
    function isCarrier(address carrier) external view returns (bool) {
        return _carriers[carrier];
    }

    /// @inheritdoc IFulfillmentEscrow
    function tokenInfo(address token) external view returns (uint8 tokenId, bool allowed) {
        TokenEntry memory entry = _tokens[token];
        return (entry.id, entry.allowed);
    }

    // ---------------------------------------------------------------------------------------------
    // Internal: the state machine
    // ---------------------------------------------------------------------------------------------

    /// @dev The single state guard: reverts unless `current` is one of the states in `expected`.
    function _expect(bytes32 orderId, OrderState current, uint256 expected) private pure {
        if ((1 << uint256(current)) & expected == 0) revert EscrowUnexpectedState(orderId, current, expected);
    }

    /// @dev Whether `account` acts for the merchant's side of an order: the merchant, or once its
    /// payout is pledged, the lender too (it may open, answer and win a dispute as the merchant).
    function _merchantSide(bytes32 orderId, Order storage order, address account) private view returns (bool) {
        return account == order.merchant || (order.pledged && account == _lenders[orderId]);
    }

    /// @dev Giving the buyer money back by consent (a cancel, a confirmed return) is the merchant's
    /// call, and once the payout is pledged the lender's alone: a merchant colluding with a buyer
    /// address cannot take back what it borrowed against.
    function _requireConsent(bytes32 orderId, Order storage order) private view {
        address consenter = order.pledged ? _lenders[orderId] : order.merchant;
        if (msg.sender != consenter) revert EscrowUnauthorizedCaller(orderId, msg.sender);
    }

    /// @dev The single place that decides when the current state's window closes. In-window actions
    /// need `block.timestamp <= deadline`; timeout actions need `block.timestamp > deadline`.
    function _deadline(Order storage order, OrderState state) private view returns (uint256) {
        uint256 clock = order.clock;
        if (state == OrderState.Funded) return clock; // shipBy
        if (state == OrderState.Delivered) return clock + order.inspectionWindow;
        Terms storage t = _terms[order.termsId];
        if (state == OrderState.Shipped) return clock + t.deliveryWindow;
        if (state == OrderState.Returning) return clock + t.returnShipWindow;
        if (state == OrderState.ReturnShipped) return clock + t.returnDeliveryWindow;
        if (state == OrderState.ReturnDelivered) return clock + t.returnInspectionWindow;
        if (state == OrderState.Disputed) return clock + t.responseWindow;
        return 0;
    }

    function _requirePassed(bytes32 orderId, uint256 deadline) private view {
        if (block.timestamp <= deadline) revert EscrowTooEarly(orderId, deadline);
    }

    function _requireOpen(bytes32 orderId, uint256 deadline) private view {
        if (block.timestamp > deadline) revert EscrowWindowClosed(orderId, deadline);
    }

    function _checkTime(bytes32 orderId, uint64 timestamp, uint256 notBefore) private view {
        if (timestamp < notBefore || timestamp > block.timestamp) {
            revert EscrowInvalidTimestamp(orderId, timestamp, notBefore, block.timestamp);
        }
    }

    function _checkOffer(Offer calldata offer) private view returns (address buyer, uint8 tokenId) {
        bytes32 orderId = offer.orderId;
        if (block.timestamp > offer.expiresAt) revert EscrowOfferExpired(orderId, offer.expiresAt);
        buyer = offer.buyer;
        if (buyer == address(0)) buyer = msg.sender;
        else if (buyer != msg.sender) revert EscrowUnauthorizedCaller(orderId, msg.sender);
        if (offer.merchant == address(0) || offer.merchant == buyer) {
            revert EscrowInvalidParties(orderId, offer.merchant, buyer);
        }
        if (offer.price < MIN_PRICE || offer.price > type(uint88).max) revert EscrowInvalidPrice(orderId, offer.price);
        _checkBounds("shipBy", offer.shipBy, block.timestamp + 1, block.timestamp + MAX_SHIP_DELAY);
        _checkBounds("inspectionWindow", offer.inspectionWindow, MIN_INSPECTION_WINDOW, MAX_INSPECTION_WINDOW);
        TokenEntry memory entry = _tokens[offer.token];
        if (!entry.allowed) revert EscrowTokenNotAllowed(offer.token);
        tokenId = entry.id;
    }

    /// @dev Adds a new order's price to the token's escrowed total and its lock (at the current
    /// terms' ratio) to the merchant's locked deposit, which the deposit must cover.
    function _addExposure(uint8 tokenId, address merchant, uint256 price) private {
        Account storage account = _accounts[tokenId][merchant];
        uint256 need = account.locked + _lock(price, _depositRatioBps);
        if (need != 0) {
            uint256 have = _deposits[tokenId][merchant];
            if (have < need) revert EscrowDepositTooLow(merchant, have, need);
        }
        account.locked = uint128(need);
        _books[tokenId].escrowed += uint128(price);
    }

    /// @dev Checks an attestation's waybill spelling, recovers its signer and requires a
    /// registered carrier; returns the signer and the waybill's tracking hash.
    function _carrier(
        bytes32 typehash,
        bytes32 orderId,
        string calldata tracking,
        uint64 timestamp,
        bytes32 evidence,
        bytes calldata signature
    ) private view returns (address signer, bytes32 trackingHash) {
        trackingHash = _canonicalTracking(orderId, tracking);
        bytes32 digest = _hashTypedDataV4(keccak256(abi.encode(typehash, orderId, trackingHash, timestamp, evidence)));
        signer = ECDSA.recoverCalldata(digest, signature);
        if (!_carriers[signer]) revert EscrowNotCarrier(orderId, signer);
    }

    /// @dev keccak256 of a waybill in its one canonical spelling `CARRIER:NUMBER`: upper-case
    /// letters and digits around a single colon, 3..64 characters. Any other spelling reverts, so
    /// the reuse check cannot depend on every client normalising the same way.
    function _canonicalTracking(bytes32 orderId, string calldata tracking) private pure returns (bytes32 hash) {
        uint256 n = bytes(tracking).length;
        uint256 ok = (n >= 3 && n <= 64) ? 1 : 0;
        assembly ("memory-safe") {
            let colon := 0 // index of the one colon; it is never at 0
            for { let i := 0 } and(ok, lt(i, n)) { i := add(i, 1) } {
                let c := byte(0, calldataload(add(tracking.offset, i)))
                // bit c of the constant is set for '0'..'9' and 'A'..'Z'
                if iszero(and(shr(c, 0x7fffffe03ff000000000000), 1)) {
                    // otherwise only a single ':' that is neither first nor last
                    ok := and(and(eq(c, 0x3a), iszero(colon)), and(gt(i, 0), lt(i, sub(n, 1))))
                    colon := i
                }
            }
            if iszero(colon) { ok := 0 }
            // keccak256 of the bytes, hashed in scratch memory past the free pointer
            let m := mload(0x40)
            calldatacopy(m, tracking.offset, n)
            hash := keccak256(m, n)
        }
        if (ok == 0) revert EscrowNonCanonicalTracking(orderId, tracking);
    }

    /// @dev Records the first use of a tracking hash; any later use by any order is rejected.
    function _claimTracking(bytes32 orderId, bytes32 trackingHash) private {
        bytes32 first = _trackingOrders[trackingHash];
        if (first != bytes32(0)) revert EscrowTrackingReused(trackingHash, first);
        _trackingOrders[trackingHash] = orderId;
    }

    // ---------------------------------------------------------------------------------------------
    // Internal: settlement. Every terminal transition goes through {_settle} exactly once.
    // ---------------------------------------------------------------------------------------------

    /// @dev Closes an order's books: `toBuyer` is credited to the buyer, the rest of the price is
    /// released to the merchant (or its lender) net of fee and reserve contribution at the order's
    /// snapshotted rates. The caller has already moved the order to a terminal state.
    function _settle(bytes32 orderId, Order storage order, uint256 toBuyer)
        private
        returns (address payee, uint256 payout, uint256 fee, uint256 reserve)
    {
        uint8 tokenId = order.tokenId;
        address merchant = order.merchant;
        uint256 price = order.price;
        uint256 gross = price - toBuyer;
        Terms storage t = _terms[order.termsId];
        if (gross != 0) {
            fee = gross * t.feeBps / BPS;
            reserve = gross * t.reserveBps / BPS;
        }
        payout = gross - fee - reserve;

        Book storage book = _books[tokenId];
        book.escrowed -= uint128(price);
        book.credits += uint128(toBuyer + payout);
        if (fee != 0) book.fees += uint128(fee);
        if (reserve != 0) book.reserve += uint128(reserve);

        Account storage account = _accounts[tokenId][merchant];
        account.locked -= uint128(_lock(price, t.depositRatioBps));
        payee = merchant;
        if (payout != 0) {
            if (!order.pledged) {
                account.credit += uint128(payout);
            } else {
                payee = _lenders[orderId];
                _accounts[tokenId][payee].credit += uint128(payout);
            }
        }
        if (toBuyer != 0) _accounts[tokenId][order.buyer].credit += uint128(toBuyer);
    }

    function _refundInFull(bytes32 orderId, Order storage order, bytes32 evidence) private {
        order.state = OrderState.Refunded;
        uint256 price = order.price;
        _settle(orderId, order, price);
        emit OrderRefunded(orderId, order.buyer, price, evidence);
    }

    function _settleReturn(bytes32 orderId, Order storage order, bytes32 evidence) private {
        order.state = OrderState.Returned;
        uint256 amount = _returns[orderId].amount;
        (address payee, uint256 payout, uint256 fee, uint256 reserve) = _settle(orderId, order, amount);
        emit ReturnSettled(orderId, amount, payee, payout, fee, reserve, evidence);
    }

    function _resolve(bytes32 orderId, Order storage order, uint256 ruling, Resolution how) private {
        order.state = OrderState.Resolved;
        uint256 price = order.price;
        uint256 buyerBps;
        if (ruling == RULING_REFUSED) buyerBps = BPS / 2;
        else if (ruling == RULING_REFUND || ruling == RULING_FRAUD) buyerBps = BPS;
        else if (ruling == RULING_RELEASE) buyerBps = 0;
        else buyerBps = ruling - RULING_SPLIT_BASE;
        uint256 toBuyer = price * buyerBps / BPS;
        (address payee, uint256 payout, uint256 fee, uint256 reserve) = _settle(orderId, order, toBuyer);
        uint256 compensation;
        if (ruling == RULING_FRAUD) compensation = _compensate(orderId, order, price);
        emit DisputeResolved(orderId, ruling, how, toBuyer, payee, payout, fee, reserve, compensation);
    }

    /// @dev Fraud: compensate the buyer by `compensationBps` of the price, from the merchant's
    /// deposit first and the token's risk reserve for any shortfall (as far as it goes).
    function _compensate(bytes32 orderId, Order storage order, uint256 price) private returns (uint256 paid) {
        uint256 due = price * _terms[order.termsId].compensationBps / BPS;
        if (due == 0) return 0;
        uint8 tokenId = order.tokenId;
        address merchant = order.merchant;
        address buyer = order.buyer;
        address token = _tokenAddress[tokenId];
        Book storage book = _books[tokenId];

        uint256 deposit = _deposits[tokenId][merchant];
        uint256 slashed = deposit < due ? deposit : due;
        if (slashed != 0) {
            _deposits[tokenId][merchant] = deposit - slashed;
            book.deposits -= uint128(slashed);
            emit DepositSlashed(merchant, token, orderId, slashed);
        }
        uint256 reserve = book.reserve;
        uint256 fromReserve = reserve < due - slashed ? reserve : due - slashed;
        if (fromReserve != 0) {
            book.reserve = uint128(reserve - fromReserve);
            emit ReservePaid(token, orderId, buyer, fromReserve);
        }
        paid = slashed + fromReserve;
        book.credits += uint128(paid);
        _accounts[tokenId][buyer].credit += uint128(paid);
    }

    function _withdraw(address token, address to) private {
        uint8 tokenId = _knownTokenId(token);
        Account storage account = _accounts[tokenId][msg.sender];
        uint256 amount = account.credit;
        if (amount == 0) revert EscrowNothingToWithdraw(token, msg.sender);
        account.credit = 0;
        _books[tokenId].credits -= uint128(amount);
        emit Withdrawn(token, msg.sender, to, amount);
        // Pull payment by the owner of the credit, already zeroed; re-entry is blocked.
        _send(token, to, amount);
    }

    // ---------------------------------------------------------------------------------------------
    // Internal: tokens and configuration
    // ---------------------------------------------------------------------------------------------

    /// @dev Takes `amount` from the caller: ETH must come as exactly `msg.value`; an ERC-20 must
    /// credit this contract with exactly `amount` (fee-on-transfer tokens are rejected).
    function _collect(address token, uint256 amount) private {
        if (token == address(0)) {
            if (msg.value != amount) revert EscrowWrongValue(amount, msg.value);
            return;
        }
        if (msg.value != 0) revert EscrowWrongValue(0, msg.value);
        IERC20 erc20 = IERC20(token);
        uint256 before = erc20.balanceOf(address(this));
        // The books already count `amount`; re-entry is blocked, and a short transfer reverts below.
        erc20.safeTransferFrom(msg.sender, address(this), amount);
        uint256 balance = erc20.balanceOf(address(this));
        if (balance != before + amount) {
            revert EscrowFeeOnTransfer(token, amount, balance > before ? balance - before : 0);
        }
    }

    /// @dev Sends to `to`, which is always the caller's own choice (a pull) or the treasury.
    function _send(address token, address to, uint256 amount) private {
        if (token == address(0)) {
            (bool ok,) = to.call{value: amount}("");
            if (!ok) revert EscrowNativeTransferFailed(to, amount);
        } else {
            IERC20(token).safeTransfer(to, amount);
        }
    }

    /// @dev The deposit an order of `price` locks at `ratio` bps, rounded up; the same value is
    /// added at funding and removed at settlement.
    function _lock(uint256 price, uint256 ratio) private pure returns (uint256) {
        return (price * ratio + BPS - 1) / BPS;
    }

    function _allowedTokenId(address token) private view returns (uint8) {
        TokenEntry memory entry = _tokens[token];
        if (!entry.allowed) revert EscrowTokenNotAllowed(token);
        return entry.id;
    }

    /// @dev Withdrawals work for every token ever registered, even if disallowed since.
    function _knownTokenId(address token) private view returns (uint8 tokenId) {
        tokenId = _tokens[token].id;
        if (tokenId == 0) revert EscrowTokenNotAllowed(token);
    }

    function _setTokenAllowed(address token, bool allowed) private {
        TokenEntry memory entry = _tokens[token];
        if (entry.id == 0) {
            if (!allowed || (token != address(0) && token.code.length == 0)) revert EscrowTokenNotAllowed(token);
            if (_tokenCount == type(uint8).max) revert EscrowRegistryFull();
            entry.id = ++_tokenCount;
            _tokenAddress[entry.id] = token;
        }
        entry.allowed = allowed;
        _tokens[token] = entry;
        emit TokenAllowed(token, entry.id, allowed);
    }

    function _setTerms(Terms memory t, string memory metaEvidence) private returns (uint16 termsId) {
        termsRules.checkTerms(t); // the hard bounds (see {EscrowTermsRules})
        if (_currentTermsId == type(uint16).max) revert EscrowRegistryFull();
        termsId = _currentTermsId + 1;
        _terms[termsId] = t;
        _currentTermsId = termsId;
        _depositRatioBps = t.depositRatioBps;
        emit TermsSet(termsId, t.arbitrator);
        emit MetaEvidence(termsId, metaEvidence);
    }

    function _checkBounds(bytes32 parameter, uint256 value, uint256 min, uint256 max) private pure {
        if (value < min || value > max) revert EscrowParameterOutOfBounds(parameter, value, min, max);
    }
}
