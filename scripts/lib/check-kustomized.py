"""Offline checks of one rendering of deploy/k8s/ (`kustomize build`), beyond what
kubernetes-validate can check (it has no schema for cert-manager's resources):

- cert-manager's resources (components/cert-manager): each a cert-manager.io/v1 Issuer or
  Certificate in the ecommerce namespace; each Certificate names a Secret, an Issuer
  defined here, durations cert-manager parses with renewBefore shorter than duration,
  known key algorithms and usages; each CA issuer's Secret is one a Certificate here
  writes; discount's certificate carries the Service's names;
- every Secret the Deployments mount: with cert-manager, one a Certificate writes; without
  it, one that deploy/k8s/README.md has users create; and only the keys such a Secret
  holds (tls.crt, tls.key, ca.crt);
- mutual TLS on both sides or on neither (components/mutual-tls): discount requires a
  client certificate exactly when the catalog presents one, and the catalog then mounts
  client.pem and client.key.
The other resources are written to OUT, for kubernetes-validate and checkov.

    python check-kustomized.py RENDERED.yaml OUT.yaml
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


# The Secrets deploy/k8s/README.md has users create with gen-keys' files, and their keys.
USER_SECRETS = {"discount-tls": {"tls.crt", "tls.key", "ca.crt"}, "discount-ca": {"ca.crt"},
                "catalog-client-tls": {"tls.crt", "tls.key"}}
CERT_MANAGER_KEYS = {"tls.crt", "tls.key", "ca.crt"}


def mounted(deployment):
    """{secret name: keys} the Deployment's volumes mount, and the files they make."""
    secrets, files = {}, set()
    for volume in deployment["spec"]["template"]["spec"].get("volumes", []):
        sources = [s["secret"] for s in volume.get("projected", {}).get("sources", []) if "secret" in s]
        if "secret" in volume:
            sources.append(dict(volume["secret"], name=volume["secret"]["secretName"]))
        for source in sources:
            items = source.get("items")
            assert items, f"{deployment['metadata']['name']}: mount {source['name']} by items"
            secrets.setdefault(source["name"], set()).update(i["key"] for i in items)
            files.update(i["path"] for i in items)
    return secrets, files


def env(deployment, name):
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return next((e["value"] for e in container.get("env", []) if e["name"] == name), None)


def main():
    rendered, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    docs = [d for d in yaml.safe_load_all(rendered.read_text()) if d]
    cert_manager = [d for d in docs if d["apiVersion"].startswith("cert-manager.io/")]
    if cert_manager:
        check_certificates(cert_manager)
        written = {c["spec"]["secretName"]: CERT_MANAGER_KEYS for c in cert_manager if c["kind"] == "Certificate"}
    else:
        written = USER_SECRETS
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    files = {}
    for name, deployment in deployments.items():
        secrets, files[name] = mounted(deployment)
        for secret, keys in secrets.items():
            assert secret in written, f"{name} mounts {secret}, which nothing here makes: {sorted(written)}"
            assert keys <= written[secret], f"{name}: {secret} has no {sorted(keys - written[secret])}"
    assert {"cert.pem", "private.key", "ca.pem"} <= files["discount"], files["discount"]
    assert "ca.pem" in files["catalog"], files["catalog"]
    mutual = env(deployments["discount"], "DISCOUNT_REQUIRE_CLIENT_CERT") == "true"
    presents = env(deployments["catalog"], "DISCOUNT_CLIENT_CERT") == "true"
    assert mutual == presents, f"discount requires a client certificate: {mutual}; the catalog presents one: {presents}"
    if presents:
        assert {"client.pem", "client.key"} <= files["catalog"], files["catalog"]
    out.write_text(yaml.safe_dump_all([d for d in docs if d not in cert_manager]))
    print(f"{rendered.name}: {len(docs)} resources ({len(cert_manager)} cert-manager), Secrets "
          f"{'from cert-manager' if cert_manager else 'made by users'}, mutual TLS {'on' if mutual else 'off'}")


if __name__ == "__main__":
    main()
