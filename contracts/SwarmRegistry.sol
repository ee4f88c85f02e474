// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

/// @title SwarmRegistry: which wallet each Tabswarm peer id is bound to, and per-round rewards.
/// @notice `registerPeer` checks the very EIP-712 binding the wallet signed in the page
/// (`eth_signTypedData_v4`) and the relay verified off chain with alloy
/// (`protocol/src/identity.rs`), so a relay can submit it gaslessly for the user, or the wallet
/// can send it itself. Authorised relays record each round's verified rewards.
/// @dev Keep PEER_BINDING_TYPE in step with `PeerBinding` in protocol/src/identity.rs (a Rust test
/// compares them). The peer key's proof of possession (ed25519) is checked by relays; on chain,
/// only an authorised relay or the signing wallet itself may register.
contract SwarmRegistry {
    string public constant NAME = "Tabswarm";
    string public constant VERSION = "1";
    string public constant PEER_BINDING_TYPE =
        "PeerBinding(string peerId,string swarmId,string relayDomain,uint256 chainId,bytes32 nonce,uint64 issuedAt,uint64 expiresAt)";
    bytes32 public constant PEER_BINDING_TYPEHASH = keccak256(bytes(PEER_BINDING_TYPE));
    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    /// Longest validity of a binding, and the clock skew allowed on `issuedAt` (as the relay).
    uint64 public constant MAX_VALIDITY = 30 days;
    uint64 public constant CLOCK_SKEW = 300;
    /// secp256k1 order / 2: signatures with a larger s are malleable copies and refused.
    uint256 private constant HALF_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    struct PeerBinding {
        string peerId;
        string swarmId;
        string relayDomain;
        uint256 chainId;
        bytes32 nonce;
        uint64 issuedAt;
        uint64 expiresAt;
    }

    struct Registration {
        address owner;
        uint64 expiresAt;
        bool revoked;
    }

    address public admin;
    /// keccak256 of the swarm id this registry serves.
    bytes32 public immutable swarmIdHash;
    mapping(address => bool) public relays;
    /// keccak256(peerId) => registration.
    mapping(bytes32 => Registration) public registrations;
    mapping(address => mapping(bytes32 => bool)) public usedNonces;
    /// round => relay => whether that relay recorded it.
    mapping(uint64 => mapping(address => bool)) public roundRecorded;

    event RelaySet(address indexed relay, bool allowed);
    event PeerRegistered(bytes32 indexed peerKey, address indexed owner, string peerId, uint64 expiresAt, address submitter);
    event PeerRevoked(bytes32 indexed peerKey, address indexed owner, string peerId);
    event RoundRecorded(uint64 indexed round, address indexed relay, address indexed contributor, uint256 rewardMicros, uint64 rollouts);

    error NotAdmin();
    error NotRelay(address caller);
    error NotSubmitter(address caller, address signer);
    error WrongChain(uint256 got, uint256 expected);
    error WrongSwarm();
    error BadWindow(uint64 issuedAt, uint64 expiresAt);
    error NotYetValid(uint64 issuedAt, uint256 now);
    error Expired(uint64 expiresAt, uint256 now);
    error BadSignature();
    error NonceUsed(address owner, bytes32 nonce);
    error PeerTaken(string peerId, address owner, uint64 expiresAt);
    error NotOwner(string peerId, address caller);
    error LengthMismatch();
    error RoundAlreadyRecorded(uint64 round);

    constructor(string memory swarmId) {
        admin = msg.sender;
        swarmIdHash = keccak256(bytes(swarmId));
        relays[msg.sender] = true;
        emit RelaySet(msg.sender, true);
    }

    modifier onlyAdmin() {
        if (msg.sender != admin) revert NotAdmin();
        _;
    }

    function setRelay(address relay, bool allowed) external onlyAdmin {
        relays[relay] = allowed;
        emit RelaySet(relay, allowed);
    }

    function domainSeparator() public view returns (bytes32) {
        return keccak256(
            abi.encode(DOMAIN_TYPEHASH, keccak256(bytes(NAME)), keccak256(bytes(VERSION)), block.chainid, address(this))
        );
    }

    /// The hash the wallet signed (EIP-712: 0x1901 ‖ domain separator ‖ hashStruct).
    function bindingDigest(PeerBinding calldata b) public view returns (bytes32) {
        bytes32 structHash = keccak256(
            abi.encode(
                PEER_BINDING_TYPEHASH,
                keccak256(bytes(b.peerId)),
                keccak256(bytes(b.swarmId)),
                keccak256(bytes(b.relayDomain)),
                b.chainId,
                b.nonce,
                b.issuedAt,
                b.expiresAt
            )
        );
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
    }

    function recover(bytes32 digest, bytes calldata signature) internal pure returns (address) {
        if (signature.length != 65) revert BadSignature();
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (v < 27) v += 27;
        if (uint256(s) > HALF_ORDER || (v != 27 && v != 28)) revert BadSignature();
        address signer = ecrecover(digest, v, r, s);
        if (signer == address(0)) revert BadSignature();
        return signer;
    }

    /// Registers `b` for the wallet that signed it. Callable by an authorised relay or that wallet.
    function registerPeer(PeerBinding calldata b, bytes calldata signature) external returns (address owner) {
        if (b.chainId != block.chainid) revert WrongChain(b.chainId, block.chainid);
        if (keccak256(bytes(b.swarmId)) != swarmIdHash) revert WrongSwarm();
        if (b.expiresAt <= b.issuedAt || b.expiresAt - b.issuedAt > MAX_VALIDITY) {
            revert BadWindow(b.issuedAt, b.expiresAt);
        }
        if (b.issuedAt > block.timestamp + CLOCK_SKEW) revert NotYetValid(b.issuedAt, block.timestamp);
        if (b.expiresAt <= block.timestamp) revert Expired(b.expiresAt, block.timestamp);
        owner = recover(bindingDigest(b), signature);
        if (!relays[msg.sender] && msg.sender != owner) revert NotSubmitter(msg.sender, owner);
        if (usedNonces[owner][b.nonce]) revert NonceUsed(owner, b.nonce);
        bytes32 key = keccak256(bytes(b.peerId));
        Registration storage current = registrations[key];
        if (
            current.owner != address(0) && current.owner != owner && !current.revoked
                && current.expiresAt > block.timestamp
        ) {
            revert PeerTaken(b.peerId, current.owner, current.expiresAt);
        }
        usedNonces[owner][b.nonce] = true;
        registrations[key] = Registration({owner: owner, expiresAt: b.expiresAt, revoked: false});
        emit PeerRegistered(key, owner, b.peerId, b.expiresAt, msg.sender);
    }

    /// The owner ends a binding (a lost or rotated peer key).
    function revokePeer(string calldata peerId) external {
        bytes32 key = keccak256(bytes(peerId));
        Registration storage current = registrations[key];
        if (current.owner != msg.sender) revert NotOwner(peerId, msg.sender);
        current.revoked = true;
        emit PeerRevoked(key, msg.sender, peerId);
    }

    /// The wallet `peerId` is bound to now (zero when none, expired or revoked).
    function ownerOf(string calldata peerId) external view returns (address owner, uint64 expiresAt) {
        Registration storage current = registrations[keccak256(bytes(peerId))];
        if (current.revoked || current.expiresAt <= block.timestamp) return (address(0), 0);
        return (current.owner, current.expiresAt);
    }

    /// An authorised relay's verified totals for one round (rewards in millionths), once per round.
    function recordRound(
        uint64 round,
        address[] calldata contributors,
        uint256[] calldata rewardMicros,
        uint64[] calldata rollouts
    ) external {
        if (!relays[msg.sender]) revert NotRelay(msg.sender);
        if (contributors.length != rewardMicros.length || contributors.length != rollouts.length) {
            revert LengthMismatch();
        }
        if (roundRecorded[round][msg.sender]) revert RoundAlreadyRecorded(round);
        roundRecorded[round][msg.sender] = true;
        for (uint256 i = 0; i < contributors.length; i++) {
            emit RoundRecorded(round, msg.sender, contributors[i], rewardMicros[i], rollouts[i]);
        }
    }
}
