// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title EscrowBatcher
/// @notice Submits many calls to one contract in one transaction, for relayers: carrier
/// attestations, releases, timeout refunds and settlements of many orders pay the 21k base cost
/// once. Stateless and permissionless: the calls run with this contract as `msg.sender`, so only
/// steps anyone may take can be batched (a party's own step is sent by that party).
/// @dev Split out of FulfillmentEscrow (which had OpenZeppelin's Multicall) to keep it under the
/// EIP-170 code-size limit. The escrow's permissionless steps are idempotent, so a batch stays
/// valid when someone copied one of its attestations and submitted it first.
contract EscrowBatcher {
    /// @notice Thrown when call `index` of a batch reverted; `reason` is its revert data.
    error BatchCallFailed(uint256 index, bytes reason);

    /// @notice Call `target` with each of `calls` in order; any revert reverts the whole batch.
    /// @param target The contract called (e.g. the FulfillmentEscrow).
    /// @param calls ABI-encoded calls (selector and arguments), none paying value.
    /// @return results What each call returned.
    function batch(address target, bytes[] calldata calls) external returns (bytes[] memory results) {
        results = new bytes[](calls.length);
        for (uint256 i = 0; i < calls.length; ++i) {
            // The target is the caller's choice and this contract holds nothing: re-entry is harmless.
            (bool ok, bytes memory ret) = target.call(calls[i]);
            if (!ok) revert BatchCallFailed(i, ret);
            results[i] = ret;
        }
    }
}
