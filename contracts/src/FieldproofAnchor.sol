// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";

/**
 * @title FieldproofAnchor
 * @notice On-chain anchor for Fieldproof gateways. A registered gateway commits, in one
 * transaction, the Merkle root (`anchorRoot`) of every batch it sealed since its previous
 * anchor. Anyone can then check, with a view call, that a reading is included in an
 * anchored batch.
 *
 * Two Merkle trees, both OpenZeppelin StandardMerkleTree (double-keccak leaves, sorted
 * commutative pair hashing, see MerkleProof.sol):
 *   - batch tree:  leaves [uint64 seq, bytes32 readingHash]   -> root = batch merkleRoot
 *   - anchor tree: leaves [uint64 batchId, bytes32 merkleRoot] for firstBatchId..lastBatchId
 *                  (contiguous)                                -> root = anchorRoot
 * Leaf = keccak256(bytes.concat(keccak256(abi.encode(uint64 id, bytes32 value)))).
 *
 * Registration binds a gateway address to an owner and needs the consent of both keys
 * (EIP-712, domain {name: "FieldproofAnchor", version: "1", chainId, verifyingContract}):
 *   - registerWithClaim: the gateway sends the transaction and presents the owner's
 *     GatewayClaim signature (EOA or ERC-1271 owner, e.g. a multisig);
 *   - registerGateway:   the owner sends the transaction and presents the gateway's
 *     GatewayConsent signature.
 * Each signature carries the gateway's current nonce, which every registration and
 * deregistration consumes, so a signature is good for one use only.
 *
 * Batch ids start at 1 per gateway. An anchor must start right after the gateway's last
 * anchored batch: no gap, no overlap, no range anchored twice. The history survives
 * deregistration, so a re-registered gateway continues where it stopped.
 */
contract FieldproofAnchor is EIP712 {
    /// @dev Per-gateway state, packed into one storage slot (20 + 8 + 4 bytes).
    struct Gateway {
        address owner; // address(0) when not registered
        uint64 lastAnchoredBatchId; // 0 before the first anchor
        uint32 anchorCount; // anchors are numbered 1..anchorCount
    }

    /// @notice One anchor: two storage slots (root; then the packed range and block).
    struct AnchorRecord {
        bytes32 anchorRoot;
        uint64 firstBatchId;
        uint64 lastBatchId;
        uint64 blockNumber;
        uint64 timestamp;
    }

    bytes32 public constant GATEWAY_CLAIM_TYPEHASH =
        keccak256("GatewayClaim(address gateway,address owner,uint256 nonce,uint256 deadline)");
    bytes32 public constant GATEWAY_CONSENT_TYPEHASH =
        keccak256("GatewayConsent(address gateway,address owner,uint256 nonce,uint256 deadline)");

    mapping(address gateway => Gateway) private _gateways;
    mapping(address gateway => mapping(uint256 anchorId => AnchorRecord)) private _anchors;
    mapping(address gateway => uint256) private _nonces;
    mapping(address gateway => address) private _pendingOwners;

    event GatewayRegistered(address indexed gateway, address indexed owner);
    event GatewayDeregistered(address indexed gateway, address indexed owner);
    event GatewayOwnershipTransferStarted(address indexed gateway, address indexed owner, address indexed newOwner);
    event GatewayOwnershipTransferred(address indexed gateway, address indexed previousOwner, address indexed newOwner);
    event Anchored(
        address indexed gateway,
        uint64 indexed anchorId,
        uint64 firstBatchId,
        uint64 lastBatchId,
        bytes32 anchorRoot
    );

    error ZeroAddress();
    error AlreadyRegistered(address gateway, address owner);
    error NotRegistered(address gateway);
    error NotGatewayOwner(address gateway, address caller);
    error NotPendingOwner(address gateway, address caller);
    error SignatureExpired(uint256 deadline, uint256 timestamp);
    error InvalidSignature(address signer);
    error InvalidBatchRange(uint64 firstBatchId, uint64 lastBatchId);
    error AlreadyAnchored(uint64 firstBatchId, uint64 lastAnchoredBatchId);
    error BatchGap(uint64 expectedFirstBatchId, uint64 firstBatchId);
    error ZeroAnchorRoot();
    error UnknownAnchor(address gateway, uint64 anchorId);

    constructor() EIP712("FieldproofAnchor", "1") {}

    // ------------------------------------------------------------------ registration

    /**
     * @notice Registers msg.sender as a gateway of `owner`, who consented by signing
     * GatewayClaim(gateway = msg.sender, owner, nonce = nonces(msg.sender), deadline).
     */
    function registerWithClaim(address owner, uint256 deadline, bytes calldata ownerSignature) external {
        address gateway = msg.sender;
        _checkSignature(owner, GATEWAY_CLAIM_TYPEHASH, gateway, owner, deadline, ownerSignature);
        _register(gateway, owner);
    }

    /**
     * @notice Registers `gateway` under msg.sender (the owner); the gateway consented by signing
     * GatewayConsent(gateway, owner = msg.sender, nonce = nonces(gateway), deadline).
     */
    function registerGateway(address gateway, uint256 deadline, bytes calldata gatewaySignature) external {
        address owner = msg.sender;
        _checkSignature(gateway, GATEWAY_CONSENT_TYPEHASH, gateway, owner, deadline, gatewaySignature);
        _register(gateway, owner);
    }

    /// @notice The owner removes a gateway. Its anchors stay; it can no longer anchor.
    function deregisterGateway(address gateway) external {
        address owner = _onlyOwner(gateway);
        _gateways[gateway].owner = address(0);
        delete _pendingOwners[gateway];
        unchecked {
            ++_nonces[gateway];
        }
        emit GatewayDeregistered(gateway, owner);
    }

    /// @notice Starts handing a gateway to `newOwner`, who completes it with acceptGatewayOwnership.
    /// address(0) cancels a pending transfer.
    function transferGatewayOwnership(address gateway, address newOwner) external {
        address owner = _onlyOwner(gateway);
        _pendingOwners[gateway] = newOwner;
        emit GatewayOwnershipTransferStarted(gateway, owner, newOwner);
    }

    /// @notice The pending owner of `gateway` takes it over.
    function acceptGatewayOwnership(address gateway) external {
        if (_pendingOwners[gateway] != msg.sender) revert NotPendingOwner(gateway, msg.sender);
        address previousOwner = _gateways[gateway].owner;
        if (previousOwner == address(0)) revert NotRegistered(gateway);
        _gateways[gateway].owner = msg.sender;
        delete _pendingOwners[gateway];
        emit GatewayOwnershipTransferred(gateway, previousOwner, msg.sender);
    }

    // ------------------------------------------------------------------ anchoring

    /**
     * @notice Commits batches firstBatchId..lastBatchId of msg.sender under `anchorRoot`.
     * firstBatchId must be lastAnchoredBatchId(msg.sender) + 1.
     * @return anchorId the new anchor's number (1, 2, 3, ... per gateway)
     */
    function anchor(uint64 firstBatchId, uint64 lastBatchId, bytes32 anchorRoot) external returns (uint64 anchorId) {
        Gateway memory g = _gateways[msg.sender];
        if (g.owner == address(0)) revert NotRegistered(msg.sender);
        if (anchorRoot == bytes32(0)) revert ZeroAnchorRoot();
        if (lastBatchId < firstBatchId) revert InvalidBatchRange(firstBatchId, lastBatchId);
        if (firstBatchId <= g.lastAnchoredBatchId) revert AlreadyAnchored(firstBatchId, g.lastAnchoredBatchId);
        unchecked {
            // lastAnchoredBatchId < firstBatchId <= type(uint64).max, so this cannot overflow
            if (firstBatchId != g.lastAnchoredBatchId + 1) revert BatchGap(g.lastAnchoredBatchId + 1, firstBatchId);
        }
        // checked: a gateway has at most 2^32 - 1 anchors
        uint32 count = g.anchorCount + 1;
        anchorId = count;
        _gateways[msg.sender] = Gateway(g.owner, lastBatchId, count);
        _anchors[msg.sender][anchorId] = AnchorRecord(
            anchorRoot,
            firstBatchId,
            lastBatchId,
            uint64(block.number),
            uint64(block.timestamp)
        );
        emit Anchored(msg.sender, anchorId, firstBatchId, lastBatchId, anchorRoot);
    }

    // ------------------------------------------------------------------ views

    /// @notice Owner (address(0) if none), last anchored batch id and anchor count of a gateway.
    function gatewayInfo(
        address gateway
    ) external view returns (address owner, uint64 lastBatchId, uint64 anchors) {
        Gateway memory g = _gateways[gateway];
        return (g.owner, g.lastAnchoredBatchId, g.anchorCount);
    }

    function ownerOf(address gateway) external view returns (address) {
        return _gateways[gateway].owner;
    }

    function isRegistered(address gateway) external view returns (bool) {
        return _gateways[gateway].owner != address(0);
    }

    function pendingOwnerOf(address gateway) external view returns (address) {
        return _pendingOwners[gateway];
    }

    /// @notice The nonce the next GatewayClaim or GatewayConsent for `gateway` must carry.
    function nonces(address gateway) external view returns (uint256) {
        return _nonces[gateway];
    }

    function lastAnchoredBatchId(address gateway) external view returns (uint64) {
        return _gateways[gateway].lastAnchoredBatchId;
    }

    function anchorCount(address gateway) external view returns (uint64) {
        return _gateways[gateway].anchorCount;
    }

    /// @notice The anchor `anchorId` of `gateway`; reverts with UnknownAnchor if there is none.
    function anchorOf(address gateway, uint64 anchorId) external view returns (AnchorRecord memory) {
        AnchorRecord memory a = _anchors[gateway][anchorId];
        if (a.anchorRoot == bytes32(0)) revert UnknownAnchor(gateway, anchorId);
        return a;
    }

    /**
     * @notice The anchor whose range holds `batchId`, or 0 if that batch is not anchored.
     * Binary search over the gateway's anchors (their ranges are contiguous from batch 1).
     */
    function findAnchor(address gateway, uint64 batchId) public view returns (uint64) {
        Gateway memory g = _gateways[gateway];
        if (batchId == 0 || batchId > g.lastAnchoredBatchId) return 0;
        uint64 lo = 1;
        uint64 hi = g.anchorCount;
        mapping(uint256 => AnchorRecord) storage anchors = _anchors[gateway];
        while (lo < hi) {
            uint64 mid = lo + (hi - lo) / 2;
            if (anchors[mid].lastBatchId < batchId) lo = mid + 1;
            else hi = mid;
        }
        return lo;
    }

    /// @notice True if batch (batchId, merkleRoot) is a leaf of anchor `anchorId` of `gateway`.
    function verifyBatch(
        address gateway,
        uint64 anchorId,
        uint64 batchId,
        bytes32 merkleRoot,
        bytes32[] calldata batchProof
    ) public view returns (bool) {
        AnchorRecord storage a = _anchors[gateway][anchorId];
        bytes32 anchorRoot = a.anchorRoot;
        if (anchorRoot == bytes32(0)) return false;
        if (batchId < a.firstBatchId || batchId > a.lastBatchId) return false;
        return MerkleProof.verifyCalldata(batchProof, anchorRoot, merkleLeaf(batchId, merkleRoot));
    }

    /**
     * @notice True if reading (seq, readingHash) is in batch (batchId, merkleRoot) and that
     * batch is in anchor `anchorId` of `gateway`.
     */
    function verifyReading(
        address gateway,
        uint64 anchorId,
        uint64 batchId,
        bytes32 merkleRoot,
        uint64 seq,
        bytes32 readingHash,
        bytes32[] calldata readingProof,
        bytes32[] calldata batchProof
    ) external view returns (bool) {
        if (!MerkleProof.verifyCalldata(readingProof, merkleRoot, merkleLeaf(seq, readingHash))) return false;
        return verifyBatch(gateway, anchorId, batchId, merkleRoot, batchProof);
    }

    /// @notice StandardMerkleTree leaf of types ['uint64','bytes32'].
    function merkleLeaf(uint64 id, bytes32 value) public pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(id, value))));
    }

    /// @notice EIP-712 digest an owner signs to let `gateway` register itself.
    function claimDigest(
        address gateway,
        address owner,
        uint256 nonce,
        uint256 deadline
    ) external view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(GATEWAY_CLAIM_TYPEHASH, gateway, owner, nonce, deadline)));
    }

    /// @notice EIP-712 digest a gateway signs to let `owner` register it.
    function consentDigest(
        address gateway,
        address owner,
        uint256 nonce,
        uint256 deadline
    ) external view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(GATEWAY_CONSENT_TYPEHASH, gateway, owner, nonce, deadline)));
    }

    // ------------------------------------------------------------------ internals

    function _checkSignature(
        address signer,
        bytes32 typehash,
        address gateway,
        address owner,
        uint256 deadline,
        bytes calldata signature
    ) private view {
        if (gateway == address(0) || owner == address(0)) revert ZeroAddress();
        if (block.timestamp > deadline) revert SignatureExpired(deadline, block.timestamp);
        address current = _gateways[gateway].owner;
        if (current != address(0)) revert AlreadyRegistered(gateway, current);
        bytes32 digest = _hashTypedDataV4(keccak256(abi.encode(typehash, gateway, owner, _nonces[gateway], deadline)));
        if (!SignatureChecker.isValidSignatureNowCalldata(signer, digest, signature)) revert InvalidSignature(signer);
    }

    function _register(address gateway, address owner) private {
        _gateways[gateway].owner = owner;
        unchecked {
            ++_nonces[gateway];
        }
        emit GatewayRegistered(gateway, owner);
    }

    function _onlyOwner(address gateway) private view returns (address owner) {
        owner = _gateways[gateway].owner;
        if (owner == address(0)) revert NotRegistered(gateway);
        if (owner != msg.sender) revert NotGatewayOwner(gateway, msg.sender);
    }
}
