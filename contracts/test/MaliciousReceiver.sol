// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title MaliciousReceiver
/// @notice TEST ONLY: a contract party (buyer, merchant or lender) that either rejects ETH or, when
/// receiving ETH, re-enters a target with a stored payload. The re-entry's outcome is recorded, not
/// bubbled, unless `bubble` is set.
contract MaliciousReceiver {
    enum Mode {
        Accept,
        Reject,
        Reenter
    }

    Mode public mode;
    address public target;
    bytes public payload;
    bool public bubble;
    uint256 public attempts;
    bool public lastSucceeded;
    bytes public lastReturnData;

    error MaliciousReceiverRejects();
    error MaliciousReceiverCallFailed(bytes returnData);

    event ReentryAttempted(bool succeeded, bytes returnData);

    /// @notice Configure how ETH receipts behave.
    function configure(Mode mode_, address target_, bytes calldata payload_, bool bubble_) external {
        mode = mode_;
        target = target_;
        payload = payload_;
        bubble = bubble_;
    }

    /// @notice Act as a party: call `to` with `data` and `msg.value`; bubbles failures.
    function exec(address to, bytes calldata data) external payable returns (bytes memory) {
        (bool ok, bytes memory ret) = to.call{value: msg.value}(data);
        if (!ok) revert MaliciousReceiverCallFailed(ret);
        return ret;
    }

    receive() external payable {
        if (mode == Mode.Reject) revert MaliciousReceiverRejects();
        if (mode == Mode.Reenter) {
            attempts += 1;
            (bool ok, bytes memory data) = target.call(payload);
            lastSucceeded = ok;
            lastReturnData = data;
            emit ReentryAttempted(ok, data);
            if (bubble && !ok) revert MaliciousReceiverCallFailed(data);
        }
    }
}
