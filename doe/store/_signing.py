"""The site key: an Ed25519 key kept outside the database that signs the audit head and bundles.

Someone who can change the database but cannot read the key cannot re-hash the audit chain
after an edit, because the head they would write needs a signature only the key can make
(21 CFR 11.10(e): the trail cannot be rewritten unnoticed). Bundles are signed with the same key,
so the importing site can tell a bundle this site (or a site it trusts) exported from one edited
on the way.

Where the key comes from, first found wins:

1. ``DOE_SITE_KEY``: the key itself (PEM text, as a secret store or an environment file gives it);
2. ``DOE_SITE_KEY_FILE``: a PEM file (a mounted secret; several replicas share one key this way);
3. ``site-key.pem`` next to the SQLite database file, or in ``DOE_DATA_DIR`` (default
   ``~/.doe-workbench``) for other databases: created on first use, readable only by its owner.

Other sites' public keys that bundles may be signed with: ``DOE_TRUSTED_KEYS``, a file with one
public key per line as ``python -m doe keys`` prints it (``ed25519:<base64>``, then an optional
comment).

>>> import tempfile, os
>>> key = load_site_key(key_file=os.path.join(tempfile.mkdtemp(), "site-key.pem"))
>>> sig = key.sign(b"hello")
>>> verify_signature(b"hello", sig, key.key_id, {key.key_id: key.public}) == ""
True
>>> verify_signature(b"hellO", sig, key.key_id, {key.key_id: key.public})
'the signature does not match: the signed content was changed'
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from doe.errors import DoeError

KEY_FILE = "site-key.pem"
PREFIX = "ed25519:"


@dataclass(frozen=True)
class SiteKey:
    """This site's signing key; ``key_id`` names it (first 16 hex digits of SHA-256 of the public key)."""

    private: Ed25519PrivateKey
    source: str

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def public_text(self) -> str:
        """The public key as one line, ``ed25519:<base64>`` (give it to sites that import our bundles)."""
        return public_text(self.public)

    @property
    def key_id(self) -> str:
        return key_id(self.public)

    def sign(self, message: bytes) -> str:
        """The Ed25519 signature of ``message``, base64."""
        return base64.b64encode(self.private.sign(message)).decode("ascii")


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_text(public: Ed25519PublicKey) -> str:
    """``ed25519:<base64 of the 32 raw bytes>``."""
    return PREFIX + base64.b64encode(_raw(public)).decode("ascii")


def key_id(public: Ed25519PublicKey) -> str:
    """The first 16 hex digits of SHA-256 of the raw public key."""
    return hashlib.sha256(_raw(public)).hexdigest()[:16]


def parse_public(text: str) -> Ed25519PublicKey:
    """A public key from ``ed25519:<base64>``; a clear DoeError otherwise."""
    body = text.strip().split()[0] if text.strip() else ""
    if not body.startswith(PREFIX):
        raise DoeError(f"'{text.strip()[:60]}' is not a public key: expected 'ed25519:' and base64, as "
                       "'python -m doe keys' prints it.")
    try:
        raw = base64.b64decode(body[len(PREFIX):], validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise DoeError(f"'{body[:60]}' is not a valid Ed25519 public key (32 bytes, base64).") from None


def key_path(url: str | None = None, data_dir: str | Path | None = None) -> Path:
    """Where the key file is when no environment variable names it (see the module docstring)."""
    if os.environ.get("DOE_SITE_KEY_FILE"):
        return Path(os.environ["DOE_SITE_KEY_FILE"]).expanduser()
    if url and url.startswith("sqlite:///") and not url.endswith(":memory:"):
        return Path(url[len("sqlite:///"):]).expanduser().parent / KEY_FILE
    folder = Path(data_dir or os.environ.get("DOE_DATA_DIR") or Path.home() / ".doe-workbench")
    return folder.expanduser() / KEY_FILE


def load_site_key(url: str | None = None, data_dir: str | Path | None = None, *,
                  key_file: str | Path | None = None, create: bool = True) -> SiteKey:
    """This site's key (``DOE_SITE_KEY``, ``DOE_SITE_KEY_FILE``, or the default file, created if missing)."""
    if key_file is None and os.environ.get("DOE_SITE_KEY", "").strip():
        return SiteKey(_private_from_pem(os.environ["DOE_SITE_KEY"].encode("utf-8"), "DOE_SITE_KEY"), "DOE_SITE_KEY")
    path = Path(key_file) if key_file is not None else key_path(url, data_dir)
    if not path.exists():
        if not create or (key_file is None and os.environ.get("DOE_SITE_KEY_FILE")):
            raise DoeError(f"The site key file '{path}' does not exist. Restore it from the backup of the site "
                           "key (without it the audit trail's signature cannot be checked), or point "
                           "DOE_SITE_KEY_FILE at it.")
        _create(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DoeError(f"The site key file '{path}' cannot be read ({exc.strerror}): give the app's user "
                       "read access to it.") from None
    return SiteKey(_private_from_pem(data, str(path)), str(path))


def _create(path: Path) -> None:
    """Write a new key, readable by its owner only; a key another process wrote first is kept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption())
    # written whole under a temporary name, then linked into place: a process starting at the same
    # moment sees either no key or the complete key, never a half-written file
    temp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        os.link(temp, path)
    except FileExistsError:
        return
    except OSError as exc:
        raise DoeError(f"Could not create the site key file '{path}' ({exc.strerror}). Set DOE_SITE_KEY_FILE "
                       "to a writable place, or create the key with 'python -m doe keys --new FILE'.") from None
    finally:
        temp.unlink(missing_ok=True)


def _private_from_pem(data: bytes, where: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise DoeError(f"{where} does not hold an unencrypted PEM private key. Create a site key with "
                       "'python -m doe keys --new FILE'.") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise DoeError(f"{where} holds a {type(key).__name__.replace('PrivateKey', '')} key; the site key must "
                       "be Ed25519 ('python -m doe keys --new FILE' makes one).")
    return key


def trusted_keys(own: SiteKey | None = None) -> dict[str, Ed25519PublicKey]:
    """Keys whose signatures count: this site's and those listed in ``DOE_TRUSTED_KEYS``, by key id."""
    keys: dict[str, Ed25519PublicKey] = {}
    if own is not None:
        keys[own.key_id] = own.public
    listed = os.environ.get("DOE_TRUSTED_KEYS", "").strip()
    if listed:
        path = Path(listed).expanduser()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise DoeError(f"DOE_TRUSTED_KEYS names '{path}', which cannot be read ({exc.strerror}).") from None
        for line in lines:
            if line.strip() and not line.lstrip().startswith("#"):
                public = parse_public(line)
                keys[key_id(public)] = public
    return keys


def verify_signature(message: bytes, signature: str | None, signer: str | None,
                     keys: dict[str, Ed25519PublicKey]) -> str:
    """'' when ``signature`` is a valid signature of ``message`` by the trusted key ``signer``; else why not."""
    if not signature or not signer:
        return "it is not signed"
    public = keys.get(signer)
    if public is None:
        return (f"it is signed with key {signer}, which is not this site's key nor one listed in "
                "DOE_TRUSTED_KEYS")
    try:
        public.verify(base64.b64decode(signature, validate=True), message)
    except (InvalidSignature, binascii.Error, ValueError):
        return "the signature does not match: the signed content was changed"
    return ""


def new_key_file(path: str | Path) -> SiteKey:
    """Create a new site key at ``path`` (refused if a file is there) and return it."""
    target = Path(path).expanduser()
    if target.exists():
        raise DoeError(f"'{target}' already exists; a site key is never overwritten. Choose another path.")
    _create(target)
    return load_site_key(key_file=target)
