"""Signed notes (manifests.sumdb_note) against x/mod's published keys and signatures."""

from __future__ import annotations

import pytest

from manifests.sumdb_note import NoteError, key_hash, open_note, parse_verifier, verifier_key

PETER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_DEFAULT = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
TEXT = ("If you think cryptography is the answer to your problem,\n"
        "then you don't know what your problem is.\n")
PETER_SIG = ("\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSN"
             "XgKvqfqdngotpRZb6KE6RyyBwJnAM=\n")
ENOCH_SIG = ("\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01"
             "oOTGwnWLox33WWd1RvMc+QQ=\n")


def note(*sigs: str) -> bytes:
    return (TEXT + "\n" + "".join(sigs)).encode()


def test_verifier_keys_parse_and_their_hash_is_recomputed() -> None:
    for text in (PETER, ENOCH, GO_DEFAULT):
        v = parse_verifier(text)
        assert verifier_key(v.name, v.public_key) == text
    v = parse_verifier(PETER)
    assert (v.name, v.key_hash, v.id) == ("PeterNeumann", 0xC74F20A3, "PeterNeumann+c74f20a3")
    assert key_hash(v.name, b"\x01" + v.public_key) == 0xC74F20A3


def test_every_mangled_verifier_key_is_refused() -> None:
    for i in range(len(PETER) + 1):  # every proper substring
        for j in range(i + 1, len(PETER) + 1):
            if (i, j) != (0, len(PETER)):
                with pytest.raises(NoteError):
                    parse_verifier(PETER[i:j])
    for i in range(len(PETER)):  # every single changed character
        with pytest.raises(NoteError):
            parse_verifier(PETER[:i] + chr(ord(PETER[i]) + 1) + PETER[i + 1:])


@pytest.mark.parametrize("key,message", [
    ("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
     "malformed verifier id"),  # a key of the wrong length, with its hash adjusted
    ("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
     "unknown verifier algorithm"),
    ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
     "invalid verifier hash"),
])
def test_verifier_key_errors_use_x_mod_wording(key: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        parse_verifier(key)


def test_a_note_signed_by_the_key_opens_to_its_text() -> None:
    peter = parse_verifier(PETER)
    assert open_note(note(PETER_SIG), peter) == TEXT
    assert open_note(note(ENOCH_SIG, PETER_SIG), peter) == TEXT  # other keys are skipped
    assert open_note(note(PETER_SIG, ENOCH_SIG), parse_verifier(ENOCH)) == TEXT


def test_a_note_signed_only_by_another_key_is_refused() -> None:
    with pytest.raises(NoteError, match=r"note has no verifiable signatures \(signed by "
                                        r"EnochRoot\+af0cfe78; want PeterNeumann\+c74f20a3\)"):
        open_note(note(ENOCH_SIG), parse_verifier(PETER))


def test_a_forged_signature_by_the_key_is_refused() -> None:
    bad = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(NoteError, match=r"invalid signature for key PeterNeumann\+c74f20a3"):
        open_note(note(bad), parse_verifier(PETER))
    changed = ("If you think cryptography is the answer to your problem,\n"
               "then you know what your problem is.\n\n" + PETER_SIG).encode()
    with pytest.raises(NoteError, match="invalid signature"):
        open_note(changed, parse_verifier(PETER))


@pytest.mark.parametrize("msg", [
    note(PETER_SIG * 101),  # more signature lines than x/mod reads
    TEXT.encode() + PETER_SIG.encode(),  # no blank line before the signatures
    note(PETER_SIG.rstrip("\n")),  # the last line is not ended
    note("- PeterNeumann" + PETER_SIG[len("\u2014 PeterNeumann"):]),  # a hyphen, not an em dash
    note(PETER_SIG, "\u2014 Bad+Name AAAAAAA=\n"),
    note(PETER_SIG).replace(b"cryptography", b"crypto\x01graphy"),
    note(PETER_SIG).replace(b"cryptography", b"crypto\xffgraphy"),
])
def test_malformed_notes_are_refused(msg: bytes) -> None:
    with pytest.raises(NoteError, match="malformed note"):
        open_note(msg, parse_verifier(PETER))


def test_an_oversized_note_is_refused_before_it_is_parsed() -> None:
    with pytest.raises(NoteError, match=r"note too large \(70001 bytes; limit 65536\)"):
        open_note(b"x" * 70001, parse_verifier(PETER))
