// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IArbitrator} from "./IArbitrator.sol";

/// @title IArbitrable
/// @notice The arbitrable side of ERC-792 (Arbitration Standard): a contract whose disputes are
/// decided by an {IArbitrator}. Written from the standard's text.
/// @dev Rulings are unsigned integers: 0 means "refused to arbitrate", 1..choices are the options
/// the arbitrable offered when it created the dispute. What they mean is for the arbitrable to say
/// (ERC-1497 meta-evidence).
interface IArbitrable {
    /// @notice Emitted when the arbitrable receives a final ruling and enforces it.
    /// @param arbitrator The arbitrator that gave the ruling.
    /// @param disputeID The dispute's id in that arbitrator.
    /// @param ruling The ruling (0 = refused to arbitrate).
    event Ruling(IArbitrator indexed arbitrator, uint256 indexed disputeID, uint256 ruling);

    /// @notice Give a final ruling on a dispute. Only the arbitrator of that dispute may call it.
    /// @param disputeID The dispute's id in the calling arbitrator.
    /// @param ruling The ruling (0 = refused to arbitrate).
    function rule(uint256 disputeID, uint256 ruling) external;
}
