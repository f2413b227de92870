// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {IArbitrable} from "./interfaces/IArbitrable.sol";
import {IArbitrator} from "./interfaces/IArbitrator.sol";

/// @title PanelArbitrator
/// @notice An ERC-792 arbitrator run by a panel of M members with threshold N: each member votes
/// once per dispute; the first ruling to collect N votes is final and is sent to the arbitrable
/// with `rule`. The panel is snapshotted per dispute (changing it never changes who decides an open
/// dispute). There are no appeals: {appealCost} is unaffordable, {appealPeriod} is empty and
/// {appeal} reverts.
///
/// @dev Security caveats:
/// - The panel is trusted: N colluding members decide any dispute. The admin chooses the panel, so
///   the admin role should be a multisig behind a timelock.
/// - N must be a strict majority of M, so two different rulings can never both reach N.
/// - Fees paid to create disputes stay here until the admin withdraws them; they are not split
///   among members on chain.
/// - If the arbitrable rejects the final ruling (e.g. the dispute already ended by default), the
///   ruling stays final here and {RulingDeliveryFailed} records the arbitrable's revert data.
contract PanelArbitrator is IArbitrator, AccessControl, ReentrancyGuardTransient {
    /// @notice Largest panel.
    uint256 public constant MAX_PANEL_SIZE = 32;

    /// @dev slot 0: arbitrable (160) | panelEpoch (32) | status (8); slot 1: choices; slot 2: ruling.
    struct DisputeData {
        IArbitrable arbitrable;
        uint32 panelEpoch;
        DisputeStatus status;
        uint256 choices;
        uint256 ruling;
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

    /// @notice Emitted when the panel changes; disputes created from now on use `epoch`.
    event PanelSet(uint32 indexed epoch, address[] members, uint256 threshold);
    /// @notice Emitted when the arbitration cost changes.
    event ArbitrationCostSet(uint256 cost);
    /// @notice Emitted when a member votes.
    event VoteCast(uint256 indexed disputeID, address indexed member, uint256 ruling, uint256 votes);
    /// @notice Emitted when a ruling reaches the threshold and becomes final.
    event DisputeRuled(uint256 indexed disputeID, IArbitrable indexed arbitrable, uint256 ruling);
    /// @notice Emitted when the arbitrable reverted on the final ruling.
    event RulingDeliveryFailed(uint256 indexed disputeID, bytes reason);
    /// @notice Emitted when the admin withdraws collected fees.
    event FeesWithdrawn(address indexed to, uint256 amount);

    uint32 private _epoch;
    uint256 private _cost;
    DisputeData[] private _disputes;
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
        _setPanel(members, threshold);
        _cost = cost;
        emit ArbitrationCostSet(cost);
    }

    // ---------------------------------------------------------------------------------------------
    // ERC-792
    // ---------------------------------------------------------------------------------------------

    /// @notice Create a dispute for the calling arbitrable, paid with at least {arbitrationCost}.
    /// @param choices Number of ruling options (rulings 0..choices are accepted).
    /// @return disputeID The new dispute's id (0, 1, 2, ...).
    function createDispute(uint256 choices, bytes calldata) external payable returns (uint256 disputeID) {
        if (msg.value < _cost) revert PanelInsufficientFee(_cost, msg.value);
        disputeID = _disputes.length;
        _disputes.push(
            DisputeData({
                arbitrable: IArbitrable(msg.sender),
                panelEpoch: _epoch,
                status: DisputeStatus.Waiting,
                choices: choices,
                ruling: 0
            })
        );
        emit DisputeCreation(disputeID, IArbitrable(msg.sender));
    }

    /// @notice The cost of creating a dispute (the same for every `extraData`).
    function arbitrationCost(bytes calldata) external view returns (uint256) {
        return _cost;
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
        if (dispute.status != DisputeStatus.Waiting) revert PanelDisputeNotWaiting(disputeID, dispute.status);
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
        try arbitrable.rule(disputeID, ruling) {}
        catch (bytes memory reason) {
            emit RulingDeliveryFailed(disputeID, reason);
        }
    }

    /// @notice Replace the panel for disputes created from now on.
    /// @param members The members (1..32, distinct, non-zero).
    /// @param threshold Votes needed: a strict majority of `members`.
    function setPanel(address[] calldata members, uint256 threshold) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setPanel(members, threshold);
    }

    /// @notice Set the arbitration cost (may be 0).
    /// @param cost The cost in wei.
    function setArbitrationCost(uint256 cost) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _cost = cost;
        emit ArbitrationCostSet(cost);
    }

    /// @notice Send collected dispute fees to `to`.
    /// @param to The recipient.
    /// @param amount The amount in wei.
    function withdrawFees(address to, uint256 amount) external onlyRole(DEFAULT_ADMIN_ROLE) nonReentrant {
        if (to == address(0)) revert PanelZeroAddress();
        emit FeesWithdrawn(to, amount);
        // The admin's own transfer of collected fees; re-entry is blocked.
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert PanelWithdrawalFailed(to, amount);
    }

    // ---------------------------------------------------------------------------------------------
    // Views
    // ---------------------------------------------------------------------------------------------

    /// @notice The current panel epoch, its members and threshold.
    function panel() external view returns (uint32 epoch, address[] memory members, uint256 threshold) {
        epoch = _epoch;
        return (epoch, _members[epoch], _thresholds[epoch]);
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

    /// @dev Bounded by MAX_PANEL_SIZE; members are admin-chosen, not user data.
    function _setPanel(address[] memory members, uint256 threshold) private {
        uint256 size = members.length;
        if (size == 0 || size > MAX_PANEL_SIZE || threshold > size || threshold * 2 <= size) {
            revert PanelInvalid(size, threshold);
        }
        uint32 epoch = ++_epoch;
        for (uint256 i = 0; i < size; ++i) {
            address member = members[i];
            if (member == address(0) || _isMember[epoch][member]) revert PanelInvalid(size, threshold);
            _isMember[epoch][member] = true;
        }
        _thresholds[epoch] = threshold;
        _members[epoch] = members;
        emit PanelSet(epoch, members, threshold);
    }
}
