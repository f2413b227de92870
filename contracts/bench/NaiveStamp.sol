// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title NaiveStamp
/// @notice Benchmark baseline only: the naive design that timestamps every record hash in
/// its own transaction. `scripts/bench_log.py` compares the evidence log against it.
contract NaiveStamp {
    /// @notice Thrown when a hash is stamped twice.
    error NaiveStampAlreadyStamped(bytes32 hash);

    /// @notice Emitted when a record hash is stamped.
    event Stamped(bytes32 indexed hash, uint256 timestamp);

    mapping(bytes32 hash => uint256 timestamp) public stampedAt;

    /// @notice Record the block time for one hash.
    function stamp(bytes32 hash) external {
        if (stampedAt[hash] != 0) revert NaiveStampAlreadyStamped(hash);
        stampedAt[hash] = block.timestamp;
        emit Stamped(hash, block.timestamp);
    }
}
