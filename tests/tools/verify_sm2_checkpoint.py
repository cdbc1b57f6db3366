#!/usr/bin/env python3
"""Verifies an exported unsilo audit checkpoint with gmssl, an SM2 library unsilo does not use.

Usage: verify_sm2_checkpoint.py PUBLIC_KEY_HEX CHECKPOINT_JSON

PUBLIC_KEY_HEX is what `unsilo audit keys` prints as public_key (04 || x || y); CHECKPOINT_JSON one line of
`unsilo audit checkpoints`. The message is rebuilt from docs/compliance.md, byte for byte:

    "unsilo-audit-checkpoint-v1" NUL hub NUL seq NUL hash NUL time_ms

and the signature (DER SEQUENCE {r, s}, GM/T 0009) is checked as SM2 with SM3 and the default signer id
1234567812345678. Exit 0 when it verifies, 1 when it does not, 2 on bad input.
"""
import json
import sys

from gmssl import sm2


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    public_hex = sys.argv[1].strip().lower()
    if not (len(public_hex) == 130 and public_hex.startswith("04")):
        print("not an uncompressed SM2 point (04 || x || y)", file=sys.stderr)
        return 2
    cp = json.loads(sys.argv[2])
    message = "\0".join(
        ["unsilo-audit-checkpoint-v1", cp["hub"], str(cp["seq"]), cp["hash"], str(cp["time_ms"])]
    ).encode("utf-8")
    verifier = sm2.CryptSM2(private_key="", public_key=public_hex[2:], asn1=True)
    # gmssl strips a leading "04" with str.lstrip("04"), which also eats the first digits of an x coordinate
    # that begins with "04" (one key in 256): set the point as it is.
    verifier.public_key = public_hex[2:]
    ok = verifier.verify_with_sm3(cp["signature"], message)
    print("verified" if ok else "NOT verified")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
