// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

/// @title NaiveEscrow
/// @notice Benchmark baseline only: the minimal escrow with no fulfillment evidence. The buyer
/// locks tokens for a seller and later releases them to the seller; nothing records shipment or
/// delivery. `scripts/bench_escrow.py` compares the FulfillmentEscrow against it.
/// @dev Not for real use: only the buyer can ever move a deal's money (a silent buyer locks it
/// forever, a dishonest one never pays), there are no timeouts, refunds or disputes, and the token
/// is assumed to be a plain ERC-20 (a fee-on-transfer token would leave the deal underfunded).
contract NaiveEscrow {
    using SafeERC20 for IERC20;

    /// @dev Deliberately unpacked (four slots), as a first, straightforward escrow would be.
    struct Deal {
        address buyer;
        address seller;
        IERC20 token;
        uint256 amount;
    }

    /// @notice Thrown when creating a deal with a zero id, a zero seller or a zero amount.
    error NaiveEscrowInvalidDeal(bytes32 id, address seller, uint256 amount);
    /// @notice Thrown when creating a deal whose id is already in use.
    error NaiveEscrowDealExists(bytes32 id);
    /// @notice Thrown when releasing a deal that does not exist (or was already released).
    error NaiveEscrowUnknownDeal(bytes32 id);
    /// @notice Thrown when someone other than the deal's buyer releases it.
    error NaiveEscrowNotBuyer(bytes32 id, address caller);

    /// @notice Emitted when a buyer locks `amount` of `token` for `seller`.
    event DealCreated(bytes32 indexed id, address indexed buyer, address indexed seller, IERC20 token, uint256 amount);
    /// @notice Emitted when the buyer releases a deal to its seller.
    event DealReleased(bytes32 indexed id, address indexed seller, uint256 amount);

    mapping(bytes32 id => Deal) private _deals;

    /// @notice Lock `amount` of `token` from the caller (the buyer) for `seller`; the caller must
    /// have approved this contract for `amount`.
    /// @param id A fresh, non-zero deal id.
    /// @param seller Who is paid on release.
    /// @param token The ERC-20 paid.
    /// @param amount The price in the token's base units.
    function create(bytes32 id, address seller, IERC20 token, uint256 amount) external {
        if (id == bytes32(0) || seller == address(0) || amount == 0) {
            revert NaiveEscrowInvalidDeal(id, seller, amount);
        }
        if (_deals[id].buyer != address(0)) revert NaiveEscrowDealExists(id);
        _deals[id] = Deal({buyer: msg.sender, seller: seller, token: token, amount: amount});
        emit DealCreated(id, msg.sender, seller, token, amount);
        // The deal is recorded before the pull; a token calling back finds the id taken.
        token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @notice The buyer pays a deal's locked amount to its seller; the deal is deleted.
    /// @param id The deal.
    function release(bytes32 id) external {
        Deal memory deal = _deals[id];
        if (deal.buyer == address(0)) revert NaiveEscrowUnknownDeal(id);
        if (msg.sender != deal.buyer) revert NaiveEscrowNotBuyer(id, msg.sender);
        delete _deals[id];
        emit DealReleased(id, deal.seller, deal.amount);
        // The deal is deleted before the transfer, so re-entry finds nothing to release.
        deal.token.safeTransfer(deal.seller, deal.amount);
    }

    /// @notice A deal's parties, token and locked amount (all zero once released or if unknown).
    /// @param id The deal.
    function dealOf(bytes32 id) external view returns (Deal memory) {
        return _deals[id];
    }
}
