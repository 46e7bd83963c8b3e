"""Offline checks of deploy/k8s/cert-manager/ (there is no cluster, and kubernetes-validate
has no schema for cert-manager's resources):

- certificates.yaml: every resource is a cert-manager.io/v1 Issuer or Certificate in the
  ecommerce namespace; each Certificate names a Secret, an Issuer defined here, durations
  cert-manager parses with renewBefore shorter than duration, known key algorithms and
  usages; each CA issuer's Secret is one a Certificate here writes; discount's
  certificate carries the Service's names.
- volumes.yaml: the volumes are put into ../discount.yaml and ../catalog.yaml in place of
  theirs, mount the Secret that discount's Certificate writes, and the patched manifests
  are written to OUT_DIR for kubernetes-validate.

    python check-cert-manager.py deploy/k8s OUT_DIR
"""

import pathlib
import re
import sys

import yaml

USAGES = {"digital signature", "key encipherment", "server auth", "client auth", "cert sign"}
DURATION = re.compile(r"^(\d+h)?(\d+m)?(\d+s)?$")


def seconds(text):
    match = DURATION.match(text or "")
    if not text or not match:
        raise ValueError(f"{text!r} is not a duration like 2160h")
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(int(part[:-1]) * units[part[-1]] for part in match.groups() if part)


def check_certificates(docs):
    issuers = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Issuer"}
    certificates = [d for d in docs if d["kind"] == "Certificate"]
    secrets = {c["spec"]["secretName"]: c for c in certificates}
    for doc in docs:
        where = f"{doc.get('kind')} {doc.get('metadata', {}).get('name')}"
        assert doc["apiVersion"] == "cert-manager.io/v1", f"{where}: apiVersion"
        assert doc["kind"] in ("Issuer", "Certificate"), f"{where}: kind"
        assert doc["metadata"]["namespace"] == "ecommerce", f"{where}: namespace"
        spec = doc["spec"]
        if doc["kind"] == "Issuer":
            kinds = [k for k in ("selfSigned", "ca") if k in spec]
            assert len(kinds) == 1, f"{where}: one of selfSigned, ca"
            if "ca" in spec:
                assert spec["ca"]["secretName"] in secrets, f"{where}: no Certificate writes its Secret"
            continue
        assert spec["issuerRef"]["kind"] == "Issuer", f"{where}: issuerRef.kind"
        assert spec["issuerRef"]["name"] in issuers, f"{where}: unknown issuer"
        duration, renew = seconds(spec["duration"]), seconds(spec["renewBefore"])
        assert 0 < renew < duration, f"{where}: renewBefore must be shorter than duration"
        key = spec["privateKey"]
        assert key["algorithm"] in ("ECDSA", "RSA", "Ed25519"), f"{where}: privateKey.algorithm"
        assert set(spec.get("usages", [])) <= USAGES, f"{where}: usages"
        assert spec.get("isCA") or spec.get("dnsNames"), f"{where}: a leaf needs dnsNames"
    discount = [c for c in certificates if c["metadata"]["name"] == "discount-tls"]
    assert discount, "no Certificate discount-tls"
    names = discount[0]["spec"]["dnsNames"]
    assert "discount.ecommerce.svc.cluster.local" in names and "discount" in names, names
    return discount[0]["spec"]["secretName"]


def patched(manifest, volume):
    docs = list(yaml.safe_load_all(manifest.read_text()))
    deployment = next(d for d in docs if d and d["kind"] == "Deployment")
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    index = next(i for i, v in enumerate(volumes) if v["name"] == volume["name"])
    volumes[index] = volume
    return docs


def main():
    k8s, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    docs = [d for d in yaml.safe_load_all((k8s / "cert-manager/certificates.yaml").read_text()) if d]
    secret = check_certificates(docs)
    volumes = yaml.safe_load((k8s / "cert-manager/volumes.yaml").read_text())
    for name in ("discount", "catalog"):
        volume = volumes[name]
        assert volume["secret"]["secretName"] == secret, f"{name}: mounts {volume['secret']['secretName']}, not {secret}"
        paths = {item["path"] for item in volume["secret"]["items"]}
        wanted = {"cert.pem", "private.key", "ca.pem"} if name == "discount" else {"ca.pem"}
        assert paths == wanted, f"{name}: files {paths}, expected {wanted}"
        (out / f"{name}.yaml").write_text(yaml.safe_dump_all(patched(k8s / f"{name}.yaml", volume)))
    print(f"cert-manager: {len(docs)} resources, and both Deployments patched to mount {secret}")


if __name__ == "__main__":
    main()
