// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title TestStablecoin
/// @notice TEST ONLY: a 6-decimal ERC-20 anyone can mint.
contract TestStablecoin is ERC20 {
    constructor() ERC20("Test USD", "TUSD") {}

    /// @notice Mint `amount` to `to` (test only; no access control).
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @inheritdoc ERC20
    function decimals() public pure override returns (uint8) {
        return 6;
    }
}
