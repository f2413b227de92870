// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {IArbitrable} from "./interfaces/IArbitrable.sol";
import {IArbitrator} from "./interfaces/IArbitrator.sol";
import {IFulfillmentEscrow} from "./interfaces/IFulfillmentEscrow.sol";

/// @title PanelArbitrator
/// @notice An ERC-792 arbitrator run by a panel of M members with threshold N: each member votes
/// once per dispute; the first ruling to collect N votes is final and is sent to the arbitrable
/// with `rule`. There are no appeals: {appealCost} is unaffordable, {appealPeriod} is empty and
/// {appeal} reverts.
///
/// Panels are immutable epochs: {setPanel} never changes an epoch, it publishes a new one with its
/// members, threshold and arbitration cost. A dispute is decided by the epoch its `extraData`
/// names (`abi.encode(uint32 epoch)`; empty means the latest), at that epoch's cost. The escrow
/// passes the `arbitratorExtraData` of the terms an order was funded under, so the panel and the
/// cost an open order relies on are fixed when it is funded: the admin can seat a new panel or
/// price disputes differently only for orders funded under terms that name the new epoch.
///
/// @dev Security caveats:
/// - The panel is trusted: N colluding members decide any dispute of their epoch. The admin chooses
///   panels, so the admin role belongs to a TimelockController (see `ledger deploy --admin-delay`).
/// - N must be a strict majority of M, so two different rulings can never both reach N.
/// - A dispute's fee is held until its ruling is delivered to the arbitrable (then it is earned and
///   the admin may withdraw it). If the arbitrable ended the dispute without this ruling (a default,
///   or the arbitration deadline passed), anyone may have the fee refunded with {refundFee} to the
///   party that opened it, as a FulfillmentEscrow records it; the admin can never withdraw held fees.
/// - If the arbitrable rejects the final ruling (e.g. the dispute already ended by default), the
///   ruling stays final here and {RulingDeliveryFailed} records the arbitrable's revert data.
contract PanelArbitrator is IArbitrator, AccessControl, ReentrancyGuardTransient {
    /// @notice Largest panel.
    uint256 public constant MAX_PANEL_SIZE = 32;

    /// @dev slot 0: arbitrable (160) | panelEpoch (32) | status (8) | feeState (8);
    /// slot 1: choices (64) | fee (192); slot 2: ruling.
    struct DisputeData {
        IArbitrable arbitrable;
        uint32 panelEpoch;
        DisputeStatus status;
        FeeState feeState;
        uint64 choices;
        uint192 fee;
        uint256 ruling;
    }

    /// @notice What became of a dispute's fee: held until the ruling is delivered (earned) or the
    /// arbitrable ended the dispute without it (refunded to the opener).
    enum FeeState {
        Held,
        Earned,
        Refunded
    }

    /// @notice Thrown when a panel is empty, too large, has a zero or duplicate member, or the
    /// threshold is not a strict majority.
    error PanelInvalid(uint256 size, uint256 threshold);
    /// @notice Thrown when `createDispute` is paid less than the arbitration cost.
    error PanelInsufficientFee(uint256 required, uint256 paid);
    /// @notice Thrown when a dispute id does not exist.
    error PanelUnknownDispute(uint256 disputeID);
    /// @notice Thrown when voting on a dispute that is not waiting for a ruling.
    error PanelDisputeNotWaiting(uint256 disputeID, DisputeStatus status);
    /// @notice Thrown when the caller is not on the dispute's panel.
    error PanelNotMember(uint256 disputeID, address caller);
    /// @notice Thrown when a member votes twice on a dispute.
    error PanelAlreadyVoted(uint256 disputeID, address member);
    /// @notice Thrown when a ruling exceeds the dispute's number of choices.
    error PanelInvalidRuling(uint256 disputeID, uint256 ruling, uint256 choices);
    /// @notice Thrown on {appeal}: this arbitrator has no appeals.
    error PanelAppealsNotSupported(uint256 disputeID);
    /// @notice Thrown when a fee withdrawal fails or exceeds the balance.
    error PanelWithdrawalFailed(address to, uint256 amount);
    /// @notice Thrown when the admin or a fee recipient is the zero address.
    error PanelZeroAddress();
    /// @notice Thrown when `extraData` names an epoch that does not exist or is malformed.
    error PanelUnknownEpoch(bytes extraData);
    /// @notice Thrown when a dispute asks for more than 2^64 - 1 choices.
    error PanelTooManyChoices(uint256 choices);
    /// @notice Thrown when a fee cannot be refunded: it is not held, or the arbitrable still waits
    /// for this dispute's ruling.
    error PanelFeeNotRefundable(uint256 disputeID, FeeState feeState);

    /// @notice Emitted when a new panel epoch is published; disputes whose extraData names it (or is
    /// empty, while it is the latest) are decided by it at `cost`.
    event PanelSet(uint32 indexed epoch, address[] members, uint256 threshold, uint256 cost);
    /// @notice Emitted when a member votes.
    event VoteCast(uint256 indexed disputeID, address indexed member, uint256 ruling, uint256 votes);
    /// @notice Emitted when a ruling reaches the threshold and becomes final.
    event DisputeRuled(uint256 indexed disputeID, IArbitrable indexed arbitrable, uint256 ruling);
    /// @notice Emitted when the arbitrable reverted on the final ruling.
    event RulingDeliveryFailed(uint256 indexed disputeID, bytes reason);
    /// @notice Emitted when the admin withdraws earned fees.
    event FeesWithdrawn(address indexed to, uint256 amount);
    /// @notice Emitted when a dispute's held fee goes back to the party that opened it.
    event FeeRefunded(uint256 indexed disputeID, address indexed to, uint256 amount);

    uint32 private _epoch;
    uint256 private _earned; // fees of delivered rulings not yet withdrawn
    DisputeData[] private _disputes;
    mapping(uint32 epoch => uint256 cost) private _costs;
    mapping(uint32 epoch => mapping(address member => bool)) private _isMember;
    mapping(uint32 epoch => uint256 threshold) private _thresholds;
    mapping(uint32 epoch => address[] members) private _members;
    mapping(uint256 disputeID => mapping(address member => bool)) private _voted;
    mapping(uint256 disputeID => mapping(uint256 ruling => uint256 votes)) private _votes;

    /// @param admin Receives DEFAULT_ADMIN_ROLE.
    /// @param members The first panel.
    /// @param threshold Votes needed for a final ruling (a strict majority of the panel).
    /// @param cost The arbitration cost in wei (may be 0).
    constructor(address admin, address[] memory members, uint256 threshold, uint256 cost) {
        if (admin == address(0)) revert PanelZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _setPanel(members, threshold, cost);
    }

    // ---------------------------------------------------------------------------------------------
    // ERC-792
    // ---------------------------------------------------------------------------------------------

    /// @notice Create a dispute for the calling arbitrable, paid with at least {arbitrationCost}.
    /// @param choices Number of ruling options (rulings 0..choices are accepted).
    /// @param extraData `abi.encode(uint32 epoch)`: the panel epoch that decides; empty: the latest.
    /// @return disputeID The new dispute's id (0, 1, 2, ...).
    function createDispute(uint256 choices, bytes calldata extraData) external payable returns (uint256 disputeID) {
        uint32 epoch = _epochOf(extraData);
        uint256 cost = _costs[epoch];
        if (msg.value < cost) revert PanelInsufficientFee(cost, msg.value);
        if (choices > type(uint64).max) revert PanelTooManyChoices(choices);
        disputeID = _disputes.length;
        _disputes.push(
            DisputeData({
                arbitrable: IArbitrable(msg.sender),
                panelEpoch: epoch,
                status: DisputeStatus.Waiting,
                feeState: FeeState.Held,
                choices: uint64(choices),
                fee: uint192(msg.value),
                ruling: 0
            })
        );
        emit DisputeCreation(disputeID, IArbitrable(msg.sender));
    }

    /// @notice The cost of a dispute decided by the epoch `extraData` names (see {createDispute}).
    function arbitrationCost(bytes calldata extraData) external view returns (uint256) {
        return _costs[_epochOf(extraData)];
    }

    /// @notice Appeals are not supported; always reverts.
    function appeal(uint256 disputeID, bytes calldata) external payable {
        revert PanelAppealsNotSupported(disputeID);
    }

    /// @notice Appeals are not supported: the cost is unaffordable.
    function appealCost(uint256, bytes calldata) external pure returns (uint256) {
        return type(uint256).max;
    }

    /// @notice Appeals are not supported: the period is empty.
    function appealPeriod(uint256) external pure returns (uint256 start, uint256 end) {
        return (0, 0);
    }

    /// @notice Waiting until a ruling reaches the threshold, then Solved (never Appealable).
    function disputeStatus(uint256 disputeID) external view returns (DisputeStatus) {
        return _dispute(disputeID).status;
    }

    /// @notice The final ruling once Solved; 0 before.
    function currentRuling(uint256 disputeID) external view returns (uint256) {
        return _dispute(disputeID).ruling;
    }

    // ---------------------------------------------------------------------------------------------
    // Panel
    // ---------------------------------------------------------------------------------------------

    /// @notice A member of the dispute's panel votes for `ruling`. The vote that brings a ruling to
    /// the threshold makes it final and calls `rule` on the arbitrable.
    /// @param disputeID The dispute.
    /// @param ruling The ruling voted for (0..choices).
    function vote(uint256 disputeID, uint256 ruling) external nonReentrant {
        DisputeData storage dispute = _dispute(disputeID);
        // A refunded dispute ended without this panel: it is closed to votes.
        if (dispute.status != DisputeStatus.Waiting || dispute.feeState != FeeState.Held) {
            revert PanelDisputeNotWaiting(disputeID, DisputeStatus.Solved);
        }
        uint32 epoch = dispute.panelEpoch;
        if (!_isMember[epoch][msg.sender]) revert PanelNotMember(disputeID, msg.sender);
        if (_voted[disputeID][msg.sender]) revert PanelAlreadyVoted(disputeID, msg.sender);
        if (ruling > dispute.choices) revert PanelInvalidRuling(disputeID, ruling, dispute.choices);
        _voted[disputeID][msg.sender] = true;
        uint256 votes = ++_votes[disputeID][ruling];
        emit VoteCast(disputeID, msg.sender, ruling, votes);
        if (votes < _thresholds[epoch]) return;

        dispute.status = DisputeStatus.Solved;
        dispute.ruling = ruling;
        IArbitrable arbitrable = dispute.arbitrable;
        emit DisputeRuled(disputeID, arbitrable, ruling);
        // The ruling is final before the call; re-entry into vote is blocked by the guard.
        try arbitrable.rule(disputeID, ruling) {
            // Delivered: the fee is earned.
            dispute.feeState = FeeState.Earned;
            _earned += dispute.fee;
        } catch (bytes memory reason) {
            emit RulingDeliveryFailed(disputeID, reason);
        }
    }

    /// @notice Refund a dispute's held fee to the party that opened it, once the arbitrable (a
    /// FulfillmentEscrow) has ended the dispute without this panel's ruling: by default (the
    /// respondent never answered) or because the arbitration deadline passed. Anyone may call;
    /// the fee goes to the order's buyer or merchant, whichever opened the dispute.
    /// @param disputeID The dispute.
    function refundFee(uint256 disputeID) external nonReentrant {
        DisputeData storage dispute = _dispute(disputeID);
        if (dispute.feeState != FeeState.Held) revert PanelFeeNotRefundable(disputeID, dispute.feeState);
        IFulfillmentEscrow escrow = IFulfillmentEscrow(address(dispute.arbitrable));
        bytes32 orderId = escrow.orderOfDispute(this, disputeID);
        // Still waiting for this ruling: the panel may yet decide.
        if (escrow.orderState(orderId) == IFulfillmentEscrow.OrderState.Disputed) {
            revert PanelFeeNotRefundable(disputeID, FeeState.Held);
        }
        IFulfillmentEscrow.OrderInfo memory order = escrow.getOrder(orderId);
        address to = escrow.disputeOf(orderId).opener == IFulfillmentEscrow.Party.Buyer ? order.buyer : order.merchant;
        // A FulfillmentEscrow never names a zero party; another arbitrable might: keep the fee.
        if (to == address(0)) revert PanelZeroAddress();
        uint256 amount = dispute.fee;
        dispute.feeState = FeeState.Refunded;
        emit FeeRefunded(disputeID, to, amount);
        // The fee goes back to its payer's side; state is final and re-entry is blocked.
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert PanelWithdrawalFailed(to, amount);
    }

    /// @notice Publish a new panel epoch. Existing epochs never change: disputes of orders funded
    /// under terms naming an earlier epoch keep its members, threshold and cost.
    /// @param members The members (1..32, distinct, non-zero).
    /// @param threshold Votes needed: a strict majority of `members`.
    /// @param cost The arbitration cost of disputes decided by the new epoch, in wei (may be 0).
    /// @return epoch The new epoch; name it in terms as `abi.encode(epoch)`.
    function setPanel(address[] calldata members, uint256 threshold, uint256 cost)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
        returns (uint32 epoch)
    {
        return _setPanel(members, threshold, cost);
    }

    /// @notice Send earned dispute fees (of rulings delivered) to `to`; held fees stay.
    /// @param to The recipient.
    /// @param amount The amount in wei.
    function withdrawFees(address to, uint256 amount) external onlyRole(DEFAULT_ADMIN_ROLE) nonReentrant {
        if (to == address(0)) revert PanelZeroAddress();
        uint256 earned = _earned;
        if (amount > earned) revert PanelWithdrawalFailed(to, amount);
        _earned = earned - amount;
        emit FeesWithdrawn(to, amount);
        // The admin's own transfer of earned fees; re-entry is blocked.
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert PanelWithdrawalFailed(to, amount);
    }

    // ---------------------------------------------------------------------------------------------
    // Views
    // ---------------------------------------------------------------------------------------------

    /// @notice The latest panel epoch, its members, threshold and cost.
    function panel() external view returns (uint32 epoch, address[] memory members, uint256 threshold, uint256 cost) {
        epoch = _epoch;
        return (epoch, _members[epoch], _thresholds[epoch], _costs[epoch]);
    }

    /// @notice An epoch's members, threshold and cost (empty for an unknown epoch).
    function panelAt(uint32 epoch) external view returns (address[] memory members, uint256 threshold, uint256 cost) {
        return (_members[epoch], _thresholds[epoch], _costs[epoch]);
    }

    /// @notice Fees of delivered rulings the admin may withdraw.
    function earnedFees() external view returns (uint256) {
        return _earned;
    }

    /// @notice Whether `member` sits on the panel of `epoch`.
    function isMember(uint32 epoch, address member) external view returns (bool) {
        return _isMember[epoch][member];
    }

    /// @notice A dispute's arbitrable, panel epoch, status, choices and ruling.
    function disputes(uint256 disputeID) external view returns (DisputeData memory) {
        return _dispute(disputeID);
    }

    /// @notice How many disputes exist.
    function disputeCount() external view returns (uint256) {
        return _disputes.length;
    }

    /// @notice Votes for `ruling` in a dispute, and whether `member` has voted in it.
    function votesFor(uint256 disputeID, uint256 ruling, address member)
        external
        view
        returns (uint256 votes, bool voted)
    {
        return (_votes[disputeID][ruling], _voted[disputeID][member]);
    }

    // ---------------------------------------------------------------------------------------------
    // Internal
    // ---------------------------------------------------------------------------------------------

    function _dispute(uint256 disputeID) private view returns (DisputeData storage) {
        if (disputeID >= _disputes.length) revert PanelUnknownDispute(disputeID);
        return _disputes[disputeID];
    }

    /// @dev The epoch `extraData` names: empty is the latest; otherwise exactly one ABI word
    /// holding an existing epoch.
    function _epochOf(bytes calldata extraData) private view returns (uint32 epoch) {
        if (extraData.length == 0) return _epoch;
        if (extraData.length != 32) revert PanelUnknownEpoch(extraData);
        uint256 word = abi.decode(extraData, (uint256));
        if (word == 0 || word > _epoch) revert PanelUnknownEpoch(extraData);
        return uint32(word);
    }

    /// @dev Bounded by MAX_PANEL_SIZE; members are admin-chosen, not user data.
    function _setPanel(address[] memory members, uint256 threshold, uint256 cost) private returns (uint32 epoch) {
        uint256 size = members.length;
        if (size == 0 || size > MAX_PANEL_SIZE || threshold > size || threshold * 2 <= size) {
            revert PanelInvalid(size, threshold);
        }
        epoch = ++_epoch;
        for (uint256 i = 0; i < size; ++i) {
            address member = members[i];
            if (member == address(0) || _isMember[epoch][member]) revert PanelInvalid(size, threshold);
            _isMember[epoch][member] = true;
        }
        _thresholds[epoch] = threshold;
        _members[epoch] = members;
        _costs[epoch] = cost;
        emit PanelSet(epoch, members, threshold, cost);
    }
}
