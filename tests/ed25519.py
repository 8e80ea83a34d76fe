"""Ed25519 private keys for Binance's second key type: the RFC 8032 section 7.1 test keys as PKCS#8 PEM (public
test vectors, never anyone's key)."""

from __future__ import annotations

from typing import Final

# TEST 2 (its message "r" signs to RFC2_SIGNATURE_R)
ED25519_PEM: Final = """-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIEzNCJso/5banbbDRuwRTg9bijGfNaumJNqM9u1PuKb7
-----END PRIVATE KEY-----
"""
RFC2_SIGNATURE_R: Final = ("92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
                           "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00")
# TEST 1: another key pair (a signature by one never verifies under the other)
OTHER_ED25519_PEM: Final = """-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g
-----END PRIVATE KEY-----
"""
