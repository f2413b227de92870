// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IFulfillmentEscrow} from "./interfaces/IFulfillmentEscrow.sol";

/// @title EscrowTermsRules
/// @notice The hard bounds the escrow's admin cannot exceed when it publishes terms or sets the
/// its deposit ratio, checked in one stateless contract. FulfillmentEscrow fixes this contract's
/// address at deployment (an immutable) and calls it only from its admin paths; a bound that is
/// broken reverts the admin's transaction with the escrow's own {EscrowParameterOutOfBounds}.
/// @dev Split out of FulfillmentEscrow to keep that contract under the EIP-170 code-size limit:
/// the checks run only when terms change, so the extra call costs nothing on an order's path.
/// It holds no state and no funds; nothing can be paid to it.
contract EscrowTermsRules {
    /// @notice Highest platform fee: 10% of the merchant's released share.
    uint16 public constant MAX_FEE_BPS = 1_000;
    /// @notice Highest risk-reserve contribution: 5% of the merchant's released share.
    uint16 public constant MAX_RESERVE_BPS = 500;
    /// @notice Highest fraud compensation: 100% of the price.
    uint16 public constant MAX_COMPENSATION_BPS = 10_000;
    /// @notice Highest deposit ratio: an order locks at most 100% of its price of the merchant's deposit.
    uint16 public constant MAX_DEPOSIT_RATIO_BPS = 10_000;
    uint32 public constant MIN_DELIVERY_WINDOW = 1 days;
    uint32 public constant MAX_DELIVERY_WINDOW = 90 days;
    uint32 public constant MIN_RETURN_SHIP_WINDOW = 1 days;
    uint32 public constant MAX_RETURN_SHIP_WINDOW = 30 days;
    uint32 public constant MIN_RETURN_DELIVERY_WINDOW = 1 days;
    uint32 public constant MAX_RETURN_DELIVERY_WINDOW = 60 days;
    uint32 public constant MIN_RETURN_INSPECTION_WINDOW = 1 hours;
    uint32 public constant MAX_RETURN_INSPECTION_WINDOW = 30 days;
    uint32 public constant MIN_RESPONSE_WINDOW = 1 days;
    uint32 public constant MAX_RESPONSE_WINDOW = 30 days;
    uint32 public constant MIN_ARBITRATION_WINDOW = 7 days;
    uint32 public constant MAX_ARBITRATION_WINDOW = 365 days;

    /// @notice Reverts unless every field of `t` is within its bounds and its arbitrator is a contract.
    /// @param t A terms version about to be published.
    function checkTerms(IFulfillmentEscrow.Terms calldata t) external view {
        _bound("feeBps", t.feeBps, 0, MAX_FEE_BPS);
        _bound("reserveBps", t.reserveBps, 0, MAX_RESERVE_BPS);
        _bound("compensationBps", t.compensationBps, 0, MAX_COMPENSATION_BPS);
        _bound("deliveryWindow", t.deliveryWindow, MIN_DELIVERY_WINDOW, MAX_DELIVERY_WINDOW);
        _bound("returnShipWindow", t.returnShipWindow, MIN_RETURN_SHIP_WINDOW, MAX_RETURN_SHIP_WINDOW);
        _bound("returnDeliveryWindow", t.returnDeliveryWindow, MIN_RETURN_DELIVERY_WINDOW, MAX_RETURN_DELIVERY_WINDOW);
        _bound(
            "returnInspectionWindow", t.returnInspectionWindow, MIN_RETURN_INSPECTION_WINDOW, MAX_RETURN_INSPECTION_WINDOW
        );
        _bound("responseWindow", t.responseWindow, MIN_RESPONSE_WINDOW, MAX_RESPONSE_WINDOW);
        // The arbitrator's deadline must not pre-empt the respondent's.
        uint256 minArbitration = t.responseWindow > MIN_ARBITRATION_WINDOW ? t.responseWindow : MIN_ARBITRATION_WINDOW;
        _bound("arbitrationWindow", t.arbitrationWindow, minArbitration, MAX_ARBITRATION_WINDOW);
        _bound("depositRatioBps", t.depositRatioBps, 0, MAX_DEPOSIT_RATIO_BPS);
        if (address(t.arbitrator).code.length == 0) revert IFulfillmentEscrow.EscrowZeroAddress();
    }

    function _bound(bytes32 parameter, uint256 value, uint256 min, uint256 max) private pure {
        if (value < min || value > max) {
            revert IFulfillmentEscrow.EscrowParameterOutOfBounds(parameter, value, min, max);
        }
    }
}
