// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title MaliciousToken
/// @notice TEST ONLY: an ERC-20 that, once armed, calls `target` with `payload` on every transfer
/// (i.e. re-enters the escrow from inside its own token transfer). The attempt's outcome is
/// recorded, not bubbled, so a test can see the guard fire while the outer call completes.
contract MaliciousToken is ERC20 {
    address public target;
    bytes public payload;
    bool public armed;
    uint256 public attempts;
    bool public lastSucceeded;
    bytes public lastReturnData;

    event ReentryAttempted(bool succeeded, bytes returnData);

    constructor() ERC20("Malicious", "EVIL") {}

    /// @notice Mint `amount` to `to` (test only; no access control).
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Arm the hook: every later transfer calls `target_` with `payload_`.
    function arm(address target_, bytes calldata payload_) external {
        target = target_;
        payload = payload_;
        armed = true;
    }

    /// @notice Disarm the hook.
    function disarm() external {
        armed = false;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (armed && from != address(0) && to != address(0)) {
            armed = false; // one attempt per arming, no recursion
            attempts += 1;
            (bool ok, bytes memory data) = target.call(payload);
            lastSucceeded = ok;
            lastReturnData = data;
            emit ReentryAttempted(ok, data);
        }
    }
}
