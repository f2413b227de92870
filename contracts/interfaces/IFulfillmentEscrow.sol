// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IArbitrable} from "./IArbitrable.sol";
import {IArbitrator} from "./IArbitrator.sol";
import {IEvidence} from "./IEvidence.sol";

/// @title IFulfillmentEscrow
/// @notice Types, errors, events and functions of the fulfillment escrow: a buyer's payment for a
/// live-commerce order moves to the merchant only when performance is evidenced by someone other
/// than the merchant (a registered carrier, the buyer, a timeout, or an arbitrator).
/// @dev The state machine, the EIP-712 types and the accounting rules are described in
/// docs/escrow.md. Every step takes an `evidence` hash (a leaf of the evidence log) and emits it.
interface IFulfillmentEscrow is IArbitrable, IEvidence {
    // ---------------------------------------------------------------------------------------------
    // Types
    // ---------------------------------------------------------------------------------------------

    /// @notice Lifecycle of an order. `None` means the order id was never used. The last four are
    /// terminal: nothing moves an order out of them.
    enum OrderState {
        None,
        Funded,
        Shipped,
        Delivered,
        Returning,
        ReturnShipped,
        ReturnDelivered,
        Disputed,
        Released,
        Refunded,
        Returned,
        Resolved
    }

    /// @notice Who opened a dispute.
    enum Party {
        None,
        Buyer,
        Merchant
    }

    /// @notice How a dispute ended.
    enum Resolution {
        Ruling,
        Default,
        ArbitratorTimeout
    }

    /// @notice The merchant's signed terms (EIP-712 type `Offer`). `buyer == address(0)` lets any
    /// buyer fund it; `orderRecord` commits to the order record leaf in the evidence log. The
    /// escrow order id lies in the merchant's namespace: its first 20 bytes are the merchant's
    /// address (the rest derives from the readable order id), so nobody else can occupy it.
    /// `termsId` is the terms version the merchant accepts: funding fails once it is not current.
    struct Offer {
        bytes32 orderId;
        address merchant;
        address buyer;
        address token;
        uint256 price;
        uint64 shipBy;
        uint32 inspectionWindow;
        bytes32 orderRecord;
        uint64 expiresAt;
        uint16 termsId;
    }

    /// @notice A carrier's shipment attestation: EIP-712 type `Shipment` for the outbound parcel,
    /// `ReturnShipment` for the return parcel (same fields). `tracking` is the waybill in its one
    /// canonical spelling, `CARRIER:NUMBER` in upper-case letters and digits (e.g. `SF:SF1234567890`;
    /// no spaces, hyphens or lower case: the escrow refuses any other spelling, so a reused waybill
    /// cannot pass as new by being written differently); its keccak256 is the tracking hash.
    /// `evidence` is the leaf of the evidence record behind the step, committed by the carrier's
    /// signature (so whoever submits the attestation cannot change what the event reports).
    struct Shipment {
        bytes32 orderId;
        string tracking;
        uint64 shippedAt;
        bytes32 evidence;
    }

    /// @notice A carrier's delivery attestation: EIP-712 type `Delivery` for the outbound parcel,
    /// `ReturnDelivery` for the return parcel (same fields as {Shipment}).
    struct Delivery {
        bytes32 orderId;
        string tracking;
        uint64 deliveredAt;
        bytes32 evidence;
    }

    /// @notice A version of the platform terms. Every order snapshots the version current when it
    /// is funded (and its merchant signed), so later admin changes never alter an open order: not
    /// its fees, windows, arbitrator (with the arbitrator's `arbitratorExtraData`, which for
    /// PanelArbitrator names an immutable panel epoch and its cost) nor the deposit it locks. All
    /// windows are in seconds.
    struct Terms {
        uint16 feeBps; // platform fee on the merchant's released share
        uint16 reserveBps; // risk-reserve contribution on the merchant's released share
        uint16 compensationBps; // fraud compensation to the buyer, share of the price
        uint32 deliveryWindow; // shippedAt + this: buyer may take a refund if still undelivered
        uint32 returnShipWindow; // return requested + this: buyer must have shipped it back
        uint32 returnDeliveryWindow; // return shippedAt + this: return parcel must be delivered
        uint32 returnInspectionWindow; // return delivery + this: merchant may dispute
        uint32 responseWindow; // dispute opened + this: respondent must answer or lose
        uint32 arbitrationWindow; // dispute opened + this: arbitrator silent -> 50/50 split
        uint16 depositRatioBps; // merchant deposit locked per order: ceil(price * this / 10000)
        IArbitrator arbitrator;
        bytes arbitratorExtraData;
    }

    /// @notice Everything known about an order, for views.
    struct OrderInfo {
        address merchant;
        address buyer;
        address token;
        uint256 price;
        OrderState state;
        uint256 clock; // the timestamp the current state's deadline counts from (see docs)
        uint256 inspectionWindow;
        uint16 termsId;
        address lender; // address(0) unless the payout is pledged
        uint256 deadline; // when the current state's window closes (0 if terminal; for an answered
        // dispute, when the arbitrator's window closes)
    }

    /// @notice A dispute, for views. `openedIn` is the state the order was in when it was opened.
    struct DisputeInfo {
        IArbitrator arbitrator;
        uint256 disputeId;
        uint256 openedAt;
        Party opener;
        bool answered;
        OrderState openedIn;
    }

    // ---------------------------------------------------------------------------------------------
    // Errors
    // ---------------------------------------------------------------------------------------------

    /// @notice Thrown when the merchant's side claims a default on a dispute opened before delivery
    /// was evidenced, or once the return parcel was sent: the buyer's silence never stands in for a
    /// delivery, nor lets the merchant keep both the returned goods and the money.
    error EscrowDefaultNeedsDelivery(bytes32 orderId, OrderState openedIn);

    /// @notice Thrown when an attestation's waybill is not in its canonical spelling
    /// `CARRIER:NUMBER` (upper-case letters and digits, one colon, 3 to 64 characters).
    error EscrowNonCanonicalTracking(bytes32 orderId, string tracking);

    /// @notice Thrown when nothing the books do not account for is held in a token.
    error EscrowNothingToSweep(address token);

    /// @notice Thrown when an order is not in one of the states an action needs.
    /// @param expectedStates Bit mask: bit `s` set means state `s` would have been accepted.
    error EscrowUnexpectedState(bytes32 orderId, OrderState current, uint256 expectedStates);

    /// @notice Thrown when funding an order id that was already used (replayed offer).
    error EscrowOrderExists(bytes32 orderId);

    /// @notice Thrown when an order id is not in the offer's merchant's namespace (its first 20
    /// bytes are not the merchant's address), so nobody can squat another merchant's order id.
    error EscrowInvalidOrderId(bytes32 orderId, address merchant);

    /// @notice Thrown when an offer names a terms version that is not the current one.
    error EscrowTermsNotCurrent(bytes32 orderId, uint16 offered, uint16 current);

    /// @notice Thrown when the offer's signature is not the merchant's for this contract and chain.
    error EscrowInvalidSignature(bytes32 orderId, address merchant);

    /// @notice Thrown when an offer is funded after `expiresAt`.
    error EscrowOfferExpired(bytes32 orderId, uint64 expiresAt);

    /// @notice Thrown when the caller may not take this action on this order.
    error EscrowUnauthorizedCaller(bytes32 orderId, address caller);

    /// @notice Thrown when the merchant and the buyer are the same address (or the merchant is zero).
    error EscrowInvalidParties(bytes32 orderId, address merchant, address buyer);

    /// @notice Thrown when a price is zero or does not fit the order's 88-bit amount field.
    error EscrowInvalidPrice(bytes32 orderId, uint256 price);

    /// @notice Thrown when a value is outside its hard bounds.
    /// @param parameter Short ASCII name of the parameter, right-padded with zeros.
    error EscrowParameterOutOfBounds(bytes32 parameter, uint256 value, uint256 min, uint256 max);

    /// @notice Thrown when a token is not on the allowlist (or, for withdrawals, never was).
    error EscrowTokenNotAllowed(address token);

    /// @notice Thrown when `msg.value` is not what the call needs.
    error EscrowWrongValue(uint256 expected, uint256 received);

    /// @notice Thrown when a token transfer credited the escrow with another amount than asked
    /// (fee-on-transfer or rebasing token).
    error EscrowFeeOnTransfer(address token, uint256 expected, uint256 received);

    /// @notice Thrown when a merchant's deposit does not cover its requirement.
    error EscrowDepositTooLow(address merchant, uint256 have, uint256 need);

    /// @notice Thrown when a deposit withdrawal exceeds what is above the requirement.
    error EscrowDepositLocked(address merchant, uint256 requested, uint256 free);

    /// @notice Thrown when an attestation's signer is not a registered carrier.
    error EscrowNotCarrier(bytes32 orderId, address signer);

    /// @notice Thrown when an attestation is signed by a party that benefits from it.
    error EscrowSignerIsParty(bytes32 orderId, address signer);

    /// @notice Thrown when a tracking hash was already used by an order (reused waybill).
    error EscrowTrackingReused(bytes32 trackingHash, bytes32 firstOrderId);

    /// @notice Thrown when a delivery names another parcel than the one shipped for this order.
    error EscrowTrackingMismatch(bytes32 orderId, bytes32 trackingHash);

    /// @notice Thrown when a shipment is attested after the order's `shipBy`.
    error EscrowLateShipment(bytes32 orderId, uint64 shippedAt, uint64 shipBy);

    /// @notice Thrown when an attested time is outside `[notBefore, notAfter]`.
    error EscrowInvalidTimestamp(bytes32 orderId, uint64 timestamp, uint256 notBefore, uint256 notAfter);

    /// @notice Thrown when a timeout action is taken before its deadline has passed.
    error EscrowTooEarly(bytes32 orderId, uint256 deadline);

    /// @notice Thrown when an in-window action is taken after the window closed.
    error EscrowWindowClosed(bytes32 orderId, uint256 deadline);

    /// @notice Thrown when a return amount is zero or above the price.
    error EscrowInvalidReturnAmount(bytes32 orderId, uint256 amount, uint256 price);

    /// @notice Thrown when an order's payout is already pledged (to `lender`).
    error EscrowAlreadyPledged(bytes32 orderId, address lender);

    /// @notice Thrown when a lender address is zero, the merchant itself or the escrow.
    error EscrowInvalidLender(bytes32 orderId, address lender);

    /// @notice Thrown when `rule` is called for a dispute this contract does not know from the caller.
    error EscrowUnknownDispute(address arbitrator, uint256 disputeId);

    /// @notice Thrown when an arbitrator returns a dispute id already in use with it.
    error EscrowDuplicateDispute(address arbitrator, uint256 disputeId);

    /// @notice Thrown when a ruling is above RULING_OPTIONS (0..3 named, 4 + buyer's bps).
    error EscrowInvalidRuling(uint256 disputeId, uint256 ruling);

    /// @notice Thrown when a default judgement is claimed but the respondent answered.
    error EscrowRespondentAnswered(bytes32 orderId);

    /// @notice Thrown when withdrawing with no credit.
    error EscrowNothingToWithdraw(address token, address account);

    /// @notice Thrown when the admin asks for more fees than have accrued.
    error EscrowFeesExceeded(address token, uint256 requested, uint256 accrued);

    /// @notice Thrown when a native-currency transfer is refused by its recipient.
    error EscrowNativeTransferFailed(address to, uint256 amount);

    /// @notice Thrown when an address argument must not be zero.
    error EscrowZeroAddress();

    /// @notice Thrown when value would be paid or credited to the escrow itself, where no one
    /// could ever withdraw it (a withdrawal, deposit or treasury naming the escrow).
    error EscrowSelfTransfer();

    /// @notice Thrown when an amount argument must not be zero.
    error EscrowZeroAmount();

    /// @notice Thrown when the token registry (255 ids) or the terms versions (65535) are full.
    error EscrowRegistryFull();

    // ---------------------------------------------------------------------------------------------
    // Events: order lifecycle
    // ---------------------------------------------------------------------------------------------

    /// @notice Emitted when a buyer funds an offer.
    event OrderFunded(
        bytes32 indexed orderId,
        address indexed merchant,
        address indexed buyer,
        address token,
        uint256 price,
        uint16 termsId,
        bytes32 orderRecord
    );

    /// @notice Emitted when a carrier-attested shipment is recorded.
    event OrderShipped(
        bytes32 indexed orderId, address indexed carrier, bytes32 indexed trackingHash, uint64 shippedAt, bytes32 evidence
    );

    /// @notice Emitted when delivery is recorded; `attester` is the carrier, or the buyer confirming.
    event OrderDelivered(
        bytes32 indexed orderId, address indexed attester, bytes32 trackingHash, uint64 deliveredAt, bytes32 evidence
    );

    /// @notice Emitted when an order is released to the merchant (or its lender): `payout` to the
    /// payee, `fee` to the platform and `reserve` to the risk reserve (their sum is the price).
    event OrderReleased(
        bytes32 indexed orderId, address indexed payee, uint256 payout, uint256 fee, uint256 reserve, bytes32 evidence
    );

    /// @notice Emitted when the buyer is refunded in full (timeout or merchant cancel).
    event OrderRefunded(bytes32 indexed orderId, address indexed buyer, uint256 amount, bytes32 evidence);

    /// @notice Emitted when the merchant pledges an order's payout to a lender.
    event OrderPledged(bytes32 indexed orderId, address indexed merchant, address indexed lender);

    /// @notice Emitted when the buyer requests a (full or partial) return.
    event ReturnRequested(bytes32 indexed orderId, uint256 amount, bytes32 evidence);

    /// @notice Emitted when a carrier-attested return shipment is recorded.
    event ReturnShipped(
        bytes32 indexed orderId, address indexed carrier, bytes32 indexed trackingHash, uint64 shippedAt, bytes32 evidence
    );

    /// @notice Emitted when a carrier-attested return delivery is recorded.
    event ReturnDelivered(
        bytes32 indexed orderId, address indexed carrier, bytes32 trackingHash, uint64 deliveredAt, bytes32 evidence
    );

    /// @notice Emitted when a return is settled: `refund` to the buyer, the rest released (payout,
    /// fee and reserve contribution as in {OrderReleased}).
    event ReturnSettled(
        bytes32 indexed orderId,
        uint256 refund,
        address indexed payee,
        uint256 payout,
        uint256 fee,
        uint256 reserve,
        bytes32 evidence
    );

    /// @notice Emitted when a party opens a dispute.
    event DisputeOpened(
        bytes32 indexed orderId, IArbitrator indexed arbitrator, uint256 indexed disputeId, address opener, bytes32 evidence
    );

    /// @notice Emitted when the respondent first answers (submits evidence) in a dispute.
    event DisputeAnswered(bytes32 indexed orderId, address indexed respondent);

    /// @notice Emitted when a dispute ends and its funds are allocated.
    event DisputeResolved(
        bytes32 indexed orderId,
        uint256 ruling,
        Resolution how,
        uint256 toBuyer,
        address indexed payee,
        uint256 payout,
        uint256 fee,
        uint256 reserve,
        uint256 compensation
    );

    // ---------------------------------------------------------------------------------------------
    // Events: money
    // ---------------------------------------------------------------------------------------------

    /// @notice Emitted when a deposit is added for a merchant.
    event DepositAdded(address indexed merchant, address indexed token, address indexed from, uint256 amount);

    /// @notice Emitted when a merchant withdraws part of its deposit.
    event DepositWithdrawn(address indexed merchant, address indexed token, uint256 amount);

    /// @notice Emitted when a fraud ruling slashes a merchant's deposit.
    event DepositSlashed(address indexed merchant, address indexed token, bytes32 indexed orderId, uint256 amount);

    /// @notice Emitted when someone donates to the risk reserve. (Contributions from settled orders
    /// are the `reserve` field of {OrderReleased}, {ReturnSettled} and {DisputeResolved}.)
    event ReserveFunded(address indexed token, address indexed from, uint256 amount);

    /// @notice Emitted when the risk reserve pays a buyer's compensation shortfall.
    event ReservePaid(address indexed token, bytes32 indexed orderId, address indexed buyer, uint256 amount);

    /// @notice Emitted when an account withdraws its credit.
    event Withdrawn(address indexed token, address indexed account, address indexed to, uint256 amount);

    /// @notice Emitted when accrued platform fees are sent to the treasury.
    event FeesWithdrawn(address indexed token, address indexed treasury, uint256 amount);

    // ---------------------------------------------------------------------------------------------
    // Events: administration
    // ---------------------------------------------------------------------------------------------

    /// @notice Emitted when a new terms version becomes current (its meta-evidence is emitted
    /// with the same id as `MetaEvidence`).
    event TermsSet(uint16 indexed termsId, IArbitrator indexed arbitrator);

    /// @notice Emitted when a carrier is registered or removed.
    event CarrierSet(address indexed carrier, bool registered);

    /// @notice Emitted when a token is allowed or disallowed.
    event TokenAllowed(address indexed token, uint8 tokenId, bool allowed);

    /// @notice Emitted when the fee treasury changes.
    event TreasurySet(address indexed treasury);

    /// @notice Emitted when tokens or ETH held outside the books are sent to the treasury.
    event Swept(address indexed token, address indexed treasury, uint256 amount);

    // ---------------------------------------------------------------------------------------------
    // Order lifecycle
    // ---------------------------------------------------------------------------------------------

    /// @notice Fund an offer: the buyer pays the price into escrow (ETH as value, ERC-20 by
    /// allowance). Requires the merchant's signature and a deposit that covers what the new order locks.
    /// @param offer The merchant's terms.
    /// @param merchantSignature EIP-712 signature of `offer` by `offer.merchant` (ECDSA or ERC-1271).
    function fund(Offer calldata offer, bytes calldata merchantSignature) external payable;

    /// @notice Record a shipment attested by a registered carrier (not the merchant). Anyone may
    /// submit. Idempotent: the same shipment submitted again (a relayer's batch racing someone who
    /// copied one of its attestations) changes nothing and does not revert.
    /// @param shipment The attested shipment.
    /// @param carrierSignature EIP-712 `Shipment` signature by the carrier.
    function ship(Shipment calldata shipment, bytes calldata carrierSignature) external;

    /// @notice Record delivery of the shipped parcel, attested by a registered carrier. Anyone may
    /// submit. Idempotent once the order's state shows the delivery recorded.
    /// @param delivery The attested delivery; its waybill must be this order's shipment.
    /// @param carrierSignature EIP-712 `Delivery` signature by the carrier.
    function deliver(Delivery calldata delivery, bytes calldata carrierSignature) external;

    /// @notice The buyer confirms delivery itself (starts the inspection window now).
    /// @param orderId The order.
    /// @param evidence Hash of the evidence record behind the step.
    function confirmDelivery(bytes32 orderId, bytes32 evidence) external;

    /// @notice Release a delivered order after its inspection window (or a requested return never
    /// shipped in time) to the merchant or its lender. Anyone may call; on an order already
    /// Released it does nothing (a relayer's batch stays valid when someone released first).
    /// @param orderId The order.
    /// @param evidence Hash of the evidence record behind the step.
    function release(bytes32 orderId, bytes32 evidence) external;

    /// @notice Refund the buyer in full after a timeout: not shipped by `shipBy`, or shipped but not
    /// delivered within the delivery window. Anyone may call; the money always goes to the buyer.
    /// On an order already Refunded it does nothing.
    /// @param orderId The order.
    /// @param evidence Hash of the evidence record behind the step.
    function refund(bytes32 orderId, bytes32 evidence) external;

    /// @notice The merchant gives the buyer a full refund (e.g. out of stock), in any open state
    /// except a dispute. Once the payout is pledged only the lender may: the merchant alone can no
    /// longer give away what it borrowed against.
    /// @param orderId The order.
    /// @param evidence Hash of the evidence record behind the step.
    function cancel(bytes32 orderId, bytes32 evidence) external;

    /// @notice The buyer requests a full or partial return within the inspection window.
    /// @param orderId The order.
    /// @param amount The amount to refund when the return completes (1..price).
    /// @param evidence Hash of the evidence record behind the step.
    function requestReturn(bytes32 orderId, uint256 amount, bytes32 evidence) external;

    /// @notice Record the return shipment attested by a registered carrier (neither party).
    /// Idempotent for the same return parcel.
    /// @param shipment The attested return shipment (EIP-712 type `ReturnShipment`).
    /// @param carrierSignature The carrier's signature.
    function shipReturn(Shipment calldata shipment, bytes calldata carrierSignature) external;

    /// @notice Record delivery of the return parcel to the merchant, attested by a registered
    /// carrier. Idempotent once the order is ReturnDelivered or Returned with this parcel.
    /// @param delivery The attested return delivery (EIP-712 type `ReturnDelivery`).
    /// @param carrierSignature The carrier's signature.
    function deliverReturn(Delivery calldata delivery, bytes calldata carrierSignature) external;

    /// @notice The merchant accepts the return (or the partial refund without a parcel): settles now.
    /// @param orderId The order.
    /// @param evidence Hash of the evidence record behind the step.
    function confirmReturn(bytes32 orderId, bytes32 evidence) external;

    /// @notice Settle a return by timeout: the return parcel was delivered and the merchant's window
    /// passed, or it was shipped and never delivered in time. Anyone may call; on an order already
    /// Returned it does nothing.
    /// @param orderId The order.
    /// @param evidence Hash of the evidence record behind the step.
    function settleReturn(bytes32 orderId, bytes32 evidence) external;

    /// @notice Pledge an order's payout to a lender, once, in any open state but a dispute. Refunds
    /// still go to the buyer first; from then on the lender acts for the merchant's side in what
    /// could give money back: it alone may cancel or confirm a return, and it may open, answer and
    /// win by default a dispute as the merchant can.
    /// @param orderId The order.
    /// @param lender Who receives the merchant's payout.
    function pledge(bytes32 orderId, address lender) external;

    // ---------------------------------------------------------------------------------------------
    // Disputes
    // ---------------------------------------------------------------------------------------------

    /// @notice Open a dispute (buyer or merchant, within its window), paying the arbitration cost.
    /// @param orderId The order.
    /// @param evidence Hash of the opener's evidence record.
    /// @return disputeId The dispute's id in the order's arbitrator.
    function openDispute(bytes32 orderId, bytes32 evidence) external payable returns (uint256 disputeId);

    /// @notice A party submits evidence (ERC-1497); the respondent's first submission is its answer,
    /// which must come within the response window (after it, the opener may claim the default).
    /// @param orderId The disputed order.
    /// @param evidence Reference to the evidence, e.g. "leaf:<index>:<hex>" of the evidence log.
    function submitEvidence(bytes32 orderId, string calldata evidence) external;

    /// @notice The opener wins by default when the respondent did not answer in time. The merchant's
    /// side wins by default only a dispute opened while the order was Returning (delivery evidenced,
    /// no return parcel sent): see {EscrowDefaultNeedsDelivery}.
    /// @param orderId The disputed order.
    function claimDefault(bytes32 orderId) external;

    /// @notice End a dispute the arbitrator never ruled on: split 50/50 (ruling 0). Anyone may call.
    /// @param orderId The disputed order.
    function timeoutDispute(bytes32 orderId) external;

    // ---------------------------------------------------------------------------------------------
    // Money
    // ---------------------------------------------------------------------------------------------

    /// @notice Add to a merchant's deposit in `token`. Anyone may pay it.
    /// @param merchant The merchant credited.
    /// @param token The token (address(0) for ETH).
    /// @param amount The amount (must equal `msg.value` for ETH).
    function depositFor(address merchant, address token, uint256 amount) external payable;

    /// @notice Withdraw deposit above the requirement of the caller's open orders.
    /// @param token The token.
    /// @param amount The amount.
    function withdrawDeposit(address token, uint256 amount) external;

    /// @notice Donate to the risk reserve of `token`.
    /// @param token The token.
    /// @param amount The amount (must equal `msg.value` for ETH).
    function fundReserve(address token, uint256 amount) external payable;

    /// @notice Withdraw the caller's whole credit in `token` to itself.
    /// @param token The token.
    function withdraw(address token) external;

    /// @notice Withdraw the caller's whole credit in `token` to `to`.
    /// @param token The token.
    /// @param to The recipient.
    function withdrawTo(address token, address to) external;

    // ---------------------------------------------------------------------------------------------
    // Administration (DEFAULT_ADMIN_ROLE); none of these can touch escrowed funds, deposits or reserve
    // ---------------------------------------------------------------------------------------------

    /// @notice Publish a new terms version for future orders; emits its meta-evidence.
    /// @param terms The terms (within the hard bounds).
    /// @param metaEvidence URI of the ERC-1497 meta-evidence describing rulings under these terms.
    /// @return termsId The new version's id.
    function setTerms(Terms calldata terms, string calldata metaEvidence) external returns (uint16 termsId);

    /// @notice Register or remove a carrier signing address.
    /// @param carrier The address.
    /// @param registered Whether its attestations are accepted.
    function setCarrier(address carrier, bool registered) external;

    /// @notice Allow or disallow a token for new orders, deposits and reserve donations.
    /// Withdrawals of a disallowed token keep working.
    /// @param token The token.
    /// @param allowed Whether new orders may use it.
    function setTokenAllowed(address token, bool allowed) external;

    /// @notice Set where accrued platform fees are sent.
    /// @param treasury The treasury.
    function setTreasury(address treasury) external;

    /// @notice Send accrued platform fees (never more) to the treasury.
    /// @param token The token.
    /// @param amount The amount.
    function withdrawFees(address token, uint256 amount) external;

    /// @notice Send to the treasury what the escrow holds of a token beyond its books (a transfer
    /// made to the escrow directly, ETH forced in). Anyone may call; the books do not change.
    /// @param token The token (address(0) for ETH).
    function sweep(address token) external;

    // ---------------------------------------------------------------------------------------------
    // Views
    // ---------------------------------------------------------------------------------------------

    /// @notice Everything about an order.
    function getOrder(bytes32 orderId) external view returns (OrderInfo memory info);

    /// @notice An order's state.
    function orderState(bytes32 orderId) external view returns (OrderState state);

    /// @notice The lender an order's payout is pledged to (address(0) if none).
    function lenderOf(bytes32 orderId) external view returns (address lender);

    /// @notice A return's agreed amount and return tracking hash.
    function returnOf(bytes32 orderId) external view returns (uint256 amount, bytes32 trackingHash);

    /// @notice An order's dispute.
    function disputeOf(bytes32 orderId) external view returns (DisputeInfo memory info);

    /// @notice The order a dispute of `arbitrator` belongs to.
    function orderOfDispute(IArbitrator arbitrator, uint256 disputeId) external view returns (bytes32 orderId);

    /// @notice The order that first used a tracking hash.
    function orderOfTracking(bytes32 trackingHash) external view returns (bytes32 orderId);

    /// @notice What the contract holds in `token`, by purpose. Their sum equals its balance.
    function totals(address token)
        external
        view
        returns (uint256 escrowed, uint256 deposits, uint256 reserve, uint256 fees, uint256 credits);

    /// @notice An account's withdrawable credit.
    function creditOf(address token, address account) external view returns (uint256 credit);

    /// @notice A merchant's deposit and the part of it its open orders lock (each order locks
    /// ceil(price * depositRatioBps / 10000) of the terms it was funded under).
    function depositOf(address token, address merchant) external view returns (uint256 deposit, uint256 locked);

    /// @notice A terms version.
    function terms(uint16 termsId) external view returns (Terms memory);

    /// @notice The terms version new orders get.
    function currentTermsId() external view returns (uint16);

    /// @notice Where fees go.
    function treasury() external view returns (address);

    /// @notice Whether an address is a registered carrier.
    function isCarrier(address carrier) external view returns (bool);

    /// @notice A token's registry id (0 if never registered) and whether it is allowed.
    function tokenInfo(address token) external view returns (uint8 tokenId, bool allowed);

}
