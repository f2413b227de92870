// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

/// @title AdminTimelock
/// @notice OpenZeppelin's TimelockController, unchanged, under a name of this project: it holds the
/// admin role of FulfillmentEscrow and PanelArbitrator when they are deployed with an admin delay
/// (`ledger deploy --admin-delay`). Every admin change (terms, carriers, tokens, treasury, fee
/// withdrawals, panels) is then scheduled in public (`CallScheduled`, with the call's target and
/// data) and can run only after `getMinDelay()` seconds, so buyers, merchants and lenders see it
/// coming and can act first; the delay itself changes only through the same delay.
/// @dev Proposers may schedule and cancel; executors run ready operations. The timelock is its
/// own admin (no separate admin is granted).
contract AdminTimelock is TimelockController {
    /// @param minDelay Seconds between scheduling and execution.
    /// @param proposers Who may schedule (and cancel) admin changes.
    /// @param executors Who may execute them once ready (address(0): anyone).
    constructor(uint256 minDelay, address[] memory proposers, address[] memory executors)
        TimelockController(minDelay, proposers, executors, address(0))
    {}
}
