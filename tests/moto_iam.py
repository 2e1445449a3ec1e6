#!/usr/bin/env python3
"""moto's server with what its IAM enforcement lacks for KMS: the key a request acts on.

    python tests/moto_iam.py -H 127.0.0.1 -p 0     (the arguments of moto_server)

With `INITIAL_NO_AUTH_ACTION_COUNT`, moto authorises every request after the first N against
the caller's IAM policies, but it checks KMS requests against the resource "*": a policy that
names a key's ARN (what real AWS evaluates) never matches, and one with "*" matches every key.
This gives moto's KMS responses the resource AWS uses, the ARN of the key named by `KeyId`
(an ID, ARN or alias) or, for Decrypt without one, of the key the ciphertext was made with.
Nothing else changes: moto still ignores every condition but `StringEquals` on
`sts:ExternalId` (a `Null` condition is not evaluated) and checks neither the web identity
token nor the trust policy of `AssumeRoleWithWebIdentity`.
"""
import json
import sys

from moto.kms.responses import KmsResponse
from moto.kms.utils import _deserialize_ciphertext_blob
from moto.server import main


def _determine_resource(self):
    try:
        body = json.loads(self.body or "{}")
    except ValueError:
        return "*"
    backend = self.kms_backend
    key_id = body.get("KeyId") or body.get("DestinationKeyId")
    try:
        if key_id:
            return backend.keys[backend.any_id_to_key_id(key_id)].arn
        if "CiphertextBlob" in body:
            import base64

            blob = base64.b64decode(body["CiphertextBlob"])
            return backend.keys[_deserialize_ciphertext_blob(blob).key_id].arn
    except Exception:  # an unknown key: the request fails later with moto's own error
        pass
    return "*"


KmsResponse._determine_resource = _determine_resource

if __name__ == "__main__":
    sys.exit(main())
