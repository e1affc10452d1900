"""Mocks that behave like the providers, for the unit tests, the loopback rehearsal and the benchmark.

- EC2 instances get deterministic private/public addresses and private DNS names (loopback addresses for
  the rehearsal), security groups and key pairs get IDs.
- pulumi-tls resources produce real keys, CSRs and certificates, made with `cryptography` from the resources'
  inputs (key algorithm and curve, subject, SANs, allowed uses, validity, CA flag), so a test can check the
  chain and complete a real TLS handshake. Private keys come back as secret outputs, as the provider marks them.
- Command stdout/stderr are secret outputs, as `additional_secret_outputs` makes them for real.
- Invokes answer what the program looks up: instance types (memory, architecture; unknown types fail as
  AWS does), the default VPC, its subnets, AMIs.
- The engine's and AWS's refusals (harness/aws_rules.py): a duplicate URN, a description AWS would refuse, a load
  balancer name over 32 characters, ... fail the program here as they would fail `pulumi up`.
Like a stack's state, a TLS resource whose name and inputs did not change keeps its outputs across runs in one
process (a real `pulumi up` does not re-key an unchanged stack), so a test can change one setting and see only
what that setting changes.
Every registration is recorded (type, name, inputs as given, outputs) for the tests to inspect.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import ipaddress
import json
import random
import re
import threading
from typing import Any, Optional

import pulumi
from pulumi.runtime.mocks import MockMonitor
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from harness import aws_rules
from harness.assumed import OfflineFacts

SECRET_SIG = "4dabf18193072939515e22adb298388d"
# (type, name, inputs) -> (outputs, {private key PEM: key object} it made): what state keeps between runs.
_STATE: dict[tuple[str, str, str], tuple[dict, dict[str, Any]]] = {}

# memory (MiB) and architectures, as aws:ec2/getInstanceType answers: the current general-purpose, compute and
# memory families, x86 and Graviton, in their common sizes. A type missing here is unknown to the mocks (the
# rehearsal says so), not to AWS.
_SIZES = {"nano": 0.5, "micro": 1, "small": 2, "medium": 4, "large": 8, "xlarge": 16, "2xlarge": 32,
          "4xlarge": 64, "8xlarge": 128, "12xlarge": 192, "16xlarge": 256}
_FAMILIES = {  # family -> (GiB per "large" relative to general purpose, architecture, smallest size)
    **{f: (1, "x86_64", "large") for f in ("m5", "m5a", "m6i", "m6a", "m7i", "m7a", "m8i")},
    **{f: (0.5, "x86_64", "large") for f in ("c5", "c5a", "c6i", "c6a", "c7i", "c7a", "c8i")},
    **{f: (2, "x86_64", "large") for f in ("r5", "r5a", "r6i", "r6a", "r7i", "r7a", "r8i")},
    **{f: (1, "arm64", "medium") for f in ("m6g", "m7g", "m8g")},
    **{f: (0.5, "arm64", "medium") for f in ("c6g", "c7g", "c8g")},
    **{f: (2, "arm64", "medium") for f in ("r6g", "r7g", "r8g")},
    "t3": (1, "x86_64", "nano"), "t3a": (1, "x86_64", "nano"), "t4g": (1, "arm64", "nano"),
}
INSTANCE_TYPES = {
    f"{family}.{size}": (int(gib * ratio * 1024) if not family.startswith("t") else int(gib * 1024), [arch])
    for family, (ratio, arch, smallest) in _FAMILIES.items()
    for size, gib in _SIZES.items()
    if list(_SIZES).index(size) >= list(_SIZES).index(smallest) and not (family.startswith("t") and gib > 32)
}
REGION = "eu-central-1"
ZONES = [f"{REGION}a", f"{REGION}b", f"{REGION}c"]
# Any other region, an existing VPC's other IDs: from the stack's settings or assumed (harness/assumed.py).
# Types some zones do not offer (as aws:ec2/getInstanceTypeOfferings answers), to prove placement follows offers.
NOT_OFFERED = {"c7g.large": {f"{REGION}c"}, "m8g.large": {f"{REGION}a", f"{REGION}b", f"{REGION}c"}}
EXISTING_VPC = "vpc-0a1b2c3d4e5f60718"
EXISTING_VPC_CIDR = "172.31.0.0/16"
# Existing subnets: id -> (vpc, zone).
SUBNETS = {
    "subnet-0a1b2c3d4e5f60001": (EXISTING_VPC, f"{REGION}a"), "subnet-0a1b2c3d4e5f60002": (EXISTING_VPC, f"{REGION}b"),
    "subnet-0a1b2c3d4e5f60003": (EXISTING_VPC, f"{REGION}c"), "subnet-0a1b2c3d4e5f60011": (EXISTING_VPC, f"{REGION}a"),
    "subnet-0a1b2c3d4e5f60012": (EXISTING_VPC, f"{REGION}b"), "subnet-0a1b2c3d4e5f60013": (EXISTING_VPC, f"{REGION}c"),
    "subnet-0fffffffffffff001": ("vpc-0fffffffffffff000", f"{REGION}a"),
}
CURVES: dict[str, type[ec.EllipticCurve]] = {
    "P224": ec.SECP224R1, "P256": ec.SECP256R1, "P384": ec.SECP384R1, "P521": ec.SECP521R1}
KEY_USAGES = {
    "digital_signature": "digital_signature", "content_commitment": "content_commitment",
    "key_encipherment": "key_encipherment", "data_encipherment": "data_encipherment",
    "key_agreement": "key_agreement", "cert_signing": "key_cert_sign", "crl_signing": "crl_sign",
    "encipher_only": "encipher_only", "decipher_only": "decipher_only",
}
EXT_USAGES = {"server_auth": ExtendedKeyUsageOID.SERVER_AUTH, "client_auth": ExtendedKeyUsageOID.CLIENT_AUTH,
              "code_signing": ExtendedKeyUsageOID.CODE_SIGNING}


def unwrap(value: Any) -> Any:
    """Inputs with secrets unwrapped (a secret arrives as {SECRET_SIG: ..., "value": ...})."""
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return unwrap(value.get("value"))
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


@dataclasses.dataclass
class Recorded:
    typ: str
    name: str
    raw_inputs: dict
    """As the engine got them: secrets still wrapped."""
    inputs: dict
    """Secrets unwrapped."""
    outputs: dict
    id: str = ""
    urn: str = ""
    parent: str = ""
    """The parent's URN ("" for the stack)."""
    options: dict = dataclasses.field(default_factory=dict)
    """Resource options as the engine got them: ignoreChanges, replaceOnChanges, deleteBeforeReplace,
    dependencies (URNs), propertyDependencies (property -> URNs), additionalSecretOutputs, customTimeouts, deletedWith."""


def _pem_key(key) -> str:
    # As pulumi-tls: SEC1 for ECDSA, PKCS#1 for RSA, PKCS#8 for ED25519.
    traditional = isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey))
    fmt = serialization.PrivateFormat.TraditionalOpenSSL if traditional else serialization.PrivateFormat.PKCS8
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()


def _name(subject: Optional[dict]) -> x509.Name:
    subject = subject or {}
    attrs = []
    if subject.get("organization"):
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, subject["organization"]))
    if subject.get("commonName"):
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, subject["commonName"]))
    return x509.Name(attrs)


def _usage_extensions(builder: x509.CertificateBuilder, uses: list[str], is_ca: bool) -> x509.CertificateBuilder:
    flags = {v: False for v in KEY_USAGES.values()}
    for use in uses:
        if use in KEY_USAGES:
            flags[KEY_USAGES[use]] = True
    if any(flags.values()):
        builder = builder.add_extension(x509.KeyUsage(**flags), critical=True)
    ext = [EXT_USAGES[u] for u in uses if u in EXT_USAGES]
    if ext:
        builder = builder.add_extension(x509.ExtendedKeyUsage(ext), critical=False)
    return builder.add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)


_REQUEST = threading.local()


class StrictMonitor(MockMonitor):
    """The SDK's mock monitor, plus what the engine enforces: one URN per resource. It hands the registration
    request (parent, options) to the mocks so that tests can read them."""

    def __init__(self, mocks: pulumi.runtime.Mocks):
        super().__init__(mocks)
        self._claimed: set[str] = set()
        self._lock = threading.Lock()

    def RegisterResource(self, request):  # noqa: N802 - the engine's method name
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type != "pulumi:pulumi:Stack":
            with self._lock:  # registrations arrive on several threads at once
                if urn in self._claimed:
                    raise aws_rules.Refused(aws_rules.duplicate_urn(urn))
                self._claimed.add(urn)
        _REQUEST.value = (urn, request)
        try:
            return super().RegisterResource(request)
        finally:
            _REQUEST.value = None


def _options(request) -> dict:
    timeouts = request.customTimeouts
    return {
        "ignoreChanges": list(request.ignoreChanges),
        "replaceOnChanges": list(request.replaceOnChanges),
        "deleteBeforeReplace": request.deleteBeforeReplace,
        "dependencies": list(request.dependencies),
        "propertyDependencies": {k: list(v.urns) for k, v in request.propertyDependencies.items()},
        "additionalSecretOutputs": list(request.additionalSecretOutputs),
        "customTimeouts": {"create": timeouts.create, "update": timeouts.update, "delete": timeouts.delete},
        "deletedWith": request.deletedWith,
        "custom": request.custom,
        "remote": request.remote,
        # The provider reference ("<urn>::<id>", "" for the default one) and a remote component's provider map.
        "provider": request.provider,
        "providers": dict(request.providers),
        # Alias specs as the SDK sends them when the monitor supports "aliasSpecs" (the mock monitor does).
        "aliases": [{"name": a.spec.name, "type": a.spec.type, "stack": a.spec.stack, "project": a.spec.project,
                     "parentUrn": a.spec.parentUrn, "noParent": a.spec.noParent} if a.HasField("spec")
                    else {"urn": a.urn} for a in request.aliases],
    }


class ProviderMocks(pulumi.runtime.Mocks):
    def __init__(self, loopback: bool = False, invoke_errors: Optional[dict[str, str]] = None,
                 loopback_net: Optional[int] = None):
        """loopback: instances get 127.N.x.y addresses, N random per run unless loopback_net is given, so that two
        rehearsals at once never bind the same address. invoke_errors: token -> error, for invokes that fail
        (credentials, permissions, throttling)."""
        self.loopback = loopback
        self.loopback_net = loopback_net if loopback_net is not None else random.SystemRandom().randint(1, 254)
        self.invoke_errors = dict(invoke_errors or {})
        self.resources: list[Recorded] = []
        self.invokes: list[tuple[str, dict]] = []
        self._image_arch: dict[str, str] = {}
        self._counts: dict[str, int] = {}
        self._keys: dict[str, Any] = {}  # private key PEM -> key object, for signing
        self.facts = OfflineFacts()

    def learn(self, config: dict) -> None:
        """The stack's settings, for what only AWS knows (its region's zones, an existing VPC): harness/assumed.py."""
        self.facts = OfflineFacts(config)

    @property
    def region(self) -> str:
        return self.facts.region

    @property
    def assumed(self) -> list[str]:
        """What the mocks answered without knowing it, one line each (tools.plan and tools.rehearse print them)."""
        return list(self.facts.notes)

    # ------------------------------------------------------------ lookups for tests
    def of_type(self, typ: str) -> list[Recorded]:
        return [r for r in self.resources if r.typ == typ]

    def named(self, name: str) -> Recorded:
        return next(r for r in self.resources if r.name == name)

    # ------------------------------------------------------------ addresses
    def _address(self, inputs: dict) -> tuple[str, str]:
        """(private IP, public IP or "") for an instance, from its Role and Node tags and its generation (the
        instance's name): a new machine gets a new address, as in EC2, so a replacement's effects show."""
        tags = inputs.get("tags") or {}
        role, _, index = tags.get("Node", "x-0").rpartition("-")
        i = int(index) if index.isdigit() else 0
        subnet = {"postanalytics": 0, "filtering": 1}.get(tags.get("Role", ""), 2)
        generation = int(hashlib.sha256(tags.get("Name", "").encode()).hexdigest()[:2], 16)
        block, host = subnet + 10 * (i // 200), 10 + i % 200
        private = (f"127.{self.loopback_net}.{block + 50 * (generation % 4)}.{host}" if self.loopback
                   else f"10.{generation}.{block + 1}.{host}")
        public = f"203.0.113.{10 + i}" if inputs.get("associatePublicIpAddress") else ""
        return private, public

    def _id(self, prefix: str, name: str) -> str:
        return f"{prefix}-{hashlib.sha256(name.encode()).hexdigest()[:17]}"

    # ------------------------------------------------------------ resources
    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        inputs = unwrap(args.inputs)
        aws_rules.check(args.typ, args.name, inputs)
        urn, request = getattr(_REQUEST, "value", None) or ("", None)
        handler = {
            "aws:ec2/instance:Instance": self._instance,
            "awsx:ec2:Vpc": self._vpc,
            "aws:lb/loadBalancer:LoadBalancer": self._load_balancer,
            "aws:lb/targetGroup:TargetGroup": self._arn("targetgroup"),
            "aws:lb/listener:Listener": self._arn("listener"),
            "aws:cloudwatch/logGroup:LogGroup": lambda name, inputs: (
                {"arn": f"arn:aws:logs:{self.region}:123456789012:log-group:{inputs.get('name') or name}"}, None),
            "aws:iam/role:Role": lambda name, inputs: (
                {"name": inputs.get("name") or name + aws_rules.AUTONAME_SUFFIX,
                 "arn": f"arn:aws:iam::123456789012:role{inputs.get('path') or '/'}{inputs.get('name') or name}"}, None),
            "aws:iam/instanceProfile:InstanceProfile": lambda name, inputs: (
                {"name": inputs.get("name") or name + aws_rules.AUTONAME_SUFFIX,
                 "arn": f"arn:aws:iam::123456789012:instance-profile{inputs.get('path') or '/'}{name}"}, None),
            "aws:sns/topic:Topic": lambda name, inputs: (
                {"arn": f"arn:aws:sns:{self.region}:123456789012:{inputs.get('name') or name + aws_rules.AUTONAME_SUFFIX}"},
                None),
            "aws:cloudwatch/dashboard:Dashboard": lambda name, inputs: (
                {"dashboardArn": f"arn:aws:cloudwatch::123456789012:dashboard/{inputs['dashboardName']}"}, None),
            "command:local:Command": self._command,
            "aws:ec2/eip:Eip": lambda name, inputs: ({"publicIp": f"198.51.100.{10 + len(self.of_type('aws:ec2/eip:Eip'))}",
                                                      "allocationId": self._id("eipalloc", name)}, None),
            "command:remote:Command": self._command,
            "tls:index/privateKey:PrivateKey": self._private_key,
            "tls:index/selfSignedCert:SelfSignedCert": self._self_signed_cert,
            "tls:index/certRequest:CertRequest": self._cert_request,
            "tls:index/locallySignedCert:LocallySignedCert": self._locally_signed_cert,
        }.get(args.typ)
        # Secret inputs stay secret outputs, as the engine keeps them. A remote component (awsx) answers with its
        # own outputs only: its inputs (nat_gateways settings) are not its outputs (NatGateway resources).
        outputs = {} if args.typ.startswith("awsx:") else dict(args.inputs)
        if args.typ.startswith("tls:"):
            extra, rid = self._kept(args.typ, args.name, inputs, handler), None
        else:
            extra, rid = handler(args.name, inputs) if handler else ({}, None)
        outputs.update(extra)
        prefix = {"aws:ec2/securityGroup:SecurityGroup": "sg", "aws:ec2/keyPair:KeyPair": "key"}.get(args.typ, "id")
        rid = rid or self._id(prefix, args.name)
        if args.typ == "aws:ec2/keyPair:KeyPair":
            outputs.setdefault("keyName", args.name)
        self.resources.append(Recorded(args.typ, args.name, args.inputs, inputs, outputs, rid, urn,
                                       request.parent if request else "", _options(request) if request else {}))
        return rid, outputs

    def _kept(self, typ: str, name: str, inputs: dict, handler) -> dict:
        # early_renewal_hours is updated in place (the provider keeps the certificate): not part of what makes one.
        made_from = {k: v for k, v in inputs.items() if k != "earlyRenewalHours"}
        key = (typ, name, json.dumps(made_from, sort_keys=True, default=str))
        if key not in _STATE:
            before = set(self._keys)
            extra, _ = handler(name, inputs)
            _STATE[key] = (extra, {pem: self._keys[pem] for pem in set(self._keys) - before})
        extra, made = _STATE[key]
        self._keys.update(made)
        return extra

    def _instance(self, name: str, inputs: dict):
        wanted = INSTANCE_TYPES.get(inputs.get("instanceType", ""), (0, []))[1]
        image = self._image_arch.get(inputs.get("ami", ""))
        if image and wanted and image not in wanted:
            raise aws_rules.Refused(
                f"aws:ec2/instance:Instance {name}: InvalidParameterValue: The architecture '{wanted[0]}' of the "
                f"specified instance type does not match the architecture '{image}' of the specified AMI.")
        private_ip, public_ip = self._address(inputs)
        dns = f"ip-{private_ip.replace('.', '-')}.{self.region}.compute.internal"
        return {"privateIp": private_ip, "publicIp": public_ip, "privateDns": dns,
                "arn": f"arn:aws:ec2:{self.region}:123456789012:instance/{name}"}, self._id("i", name)

    def _vpc(self, name: str, inputs: dict):
        """awsx.ec2.Vpc registers as one resource: its outputs, subnets zone by zone as awsx lays them out."""
        zones = inputs.get("availabilityZoneNames") or self.facts.zones()[:3]
        return {"vpcId": self._id("vpc", name),
                "publicSubnetIds": [self._id("subnet", f"{name}-public-{z}") for z in zones],
                "privateSubnetIds": [self._id("subnet", f"{name}-private-{z}") for z in zones]}, None

    def _load_balancer(self, name: str, inputs: dict):
        return {"arn": f"arn:aws:elasticloadbalancing:{self.region}:123456789012:loadbalancer/net/{name}/0123456789abcdef",
                "arnSuffix": f"net/{name}/0123456789abcdef",
                "dnsName": f"{name}-0123456789abcdef.elb.{self.region}.amazonaws.com"}, None

    def _arn(self, kind: str):
        return lambda name, inputs: ({"arn": f"arn:aws:elasticloadbalancing:{self.region}:123456789012:{kind}/{name}/0123456789abcdef",
                                      "arnSuffix": f"{kind}/{name}/0123456789abcdef"}, None)

    def _command(self, name: str, inputs: dict):
        return {"stdout": pulumi.Output.secret(""), "stderr": pulumi.Output.secret("")}, None

    def _private_key(self, name: str, inputs: dict):
        algorithm = inputs.get("algorithm", "RSA")
        key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
        if algorithm == "ECDSA":
            key = ec.generate_private_key(CURVES[inputs.get("ecdsaCurve", "P224")]())
        elif algorithm == "ED25519":
            key = ed25519.Ed25519PrivateKey.generate()
        else:
            key = rsa.generate_private_key(65537, int(inputs.get("rsaBits", 2048)))
        pem = _pem_key(key)
        self._keys[pem] = key
        # P224 has no OpenSSH form (the provider leaves it empty too).
        openssh_private = "" if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp224r1" else \
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                              serialization.NoEncryption()).decode()
        public = key.public_key()
        return {
            "privateKeyPem": pulumi.Output.secret(pem),
            "privateKeyOpenssh": pulumi.Output.secret(openssh_private),
            "publicKeyPem": public.public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
            "publicKeyOpenssh": public.public_bytes(serialization.Encoding.OpenSSH,
                                                    serialization.PublicFormat.OpenSSH).decode() + "\n",
        }, None

    def _key(self, pem: str):
        return self._keys.get(pem) or serialization.load_pem_private_key(pem.encode(), None)

    def _validity(self, inputs: dict) -> tuple[datetime.datetime, datetime.datetime]:
        start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
        return start, start + datetime.timedelta(hours=int(inputs["validityPeriodHours"]))

    def _self_signed_cert(self, name: str, inputs: dict):
        key = self._key(inputs["privateKeyPem"])
        start, end = self._validity(inputs)
        subject = _name(inputs.get("subject"))
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(end)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
        builder = _usage_extensions(builder, inputs.get("allowedUses", []), bool(inputs.get("isCaCertificate")))
        cert = builder.sign(key, None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256())
        return {"certPem": cert.public_bytes(serialization.Encoding.PEM).decode(),
                "validityStartTime": start.isoformat(), "validityEndTime": end.isoformat()}, None

    def _cert_request(self, name: str, inputs: dict):
        key = self._key(inputs["privateKeyPem"])
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in inputs.get("dnsNames", [])]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in inputs.get("ipAddresses", [])]
        builder = x509.CertificateSigningRequestBuilder().subject_name(_name(inputs.get("subject")))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        csr = builder.sign(key, None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256())
        return {"certRequestPem": csr.public_bytes(serialization.Encoding.PEM).decode()}, None

    def _locally_signed_cert(self, name: str, inputs: dict):
        csr = x509.load_pem_x509_csr(inputs["certRequestPem"].encode())
        ca_cert = x509.load_pem_x509_certificate(inputs["caCertPem"].encode())
        ca_key = self._key(inputs["caPrivateKeyPem"])
        start, end = self._validity(inputs)
        builder = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca_cert.subject)
                   .public_key(csr.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(end)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(csr.public_key()), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                                  critical=False))
        try:
            san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            builder = builder.add_extension(san.value, critical=False)
        except x509.ExtensionNotFound:
            pass
        builder = _usage_extensions(builder, inputs.get("allowedUses", []), bool(inputs.get("isCaCertificate")))
        cert = builder.sign(ca_key, hashes.SHA256())
        return {"certPem": cert.public_bytes(serialization.Encoding.PEM).decode(),
                "validityStartTime": start.isoformat(), "validityEndTime": end.isoformat()}, None

    # ------------------------------------------------------------ invokes
    def provider_region(self, ref: str) -> Optional[str]:
        """The region an explicit aws.Provider was given (None for the default provider: the stack's)."""
        urn = ref.rpartition("::")[0] if ref else ""
        found = next((r for r in self.resources if r.urn == urn and r.typ == "pulumi:providers:aws"), None)
        return (found.inputs.get("region") or None) if found else None

    def call(self, args: pulumi.runtime.MockCallArgs):
        # An explicit provider of another region answers for that region (its zones, its offers).
        region = self.provider_region(getattr(args, "provider", "") or "")
        if region and region != self.facts.region:
            stack_facts, self.facts = self.facts, OfflineFacts({**self.facts.config, "aws:region": region})
            try:
                return self._call(args)
            finally:
                stack_facts.notes.extend(n for n in self.facts.notes if n not in stack_facts.notes)
                self.facts = stack_facts
        return self._call(args)

    def _call(self, args: pulumi.runtime.MockCallArgs):
        token, a = args.token, unwrap(args.args)
        self.invokes.append((token, a))
        if token in self.invoke_errors:
            return {}, [("", self.invoke_errors[token])]
        if token == "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings":
            wanted = next(f["values"] for f in a["filters"] if f["name"] == "instance-type")
            skip = (lambda t: NOT_OFFERED.get(t, set())) if self.region == REGION else (lambda t: set())
            pairs = [(z, t) for t in wanted for z in self.facts.offered(t, skip(t))]
            return {"id": self.region, "locations": [z for z, _ in pairs], "instanceTypes": [t for _, t in pairs],
                    "locationTypes": ["availability-zone"] * len(pairs)}, []
        if token == "aws:index/getRegion:getRegion":
            # The provider's configured region (an unset aws:region stays unset: the settings refuse it).
            region = self.facts.region if self.facts.config.get("aws:region") else ""
            return {"id": region, "region": region, "name": region, "endpoint": f"ec2.{region}.amazonaws.com",
                    "description": region}, []
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            return {"id": self.region, "names": self.facts.zones(), "zoneIds": self.facts.zone_ids()}, []
        if token == "aws:ec2/getSubnet:getSubnet":
            found = self.facts.subnet(a["id"], SUBNETS)
            if found is None:
                return {}, [("id", f"no matching EC2 Subnet found ({a['id']})")]
            vpc, zone = found
            return {"id": a["id"], "vpcId": vpc, "availabilityZone": zone, "cidrBlock": "172.31.0.0/20"}, []
        if token == "aws:ec2/getInstanceType:getInstanceType":
            if a["instanceType"] not in INSTANCE_TYPES:
                # The settings refuse a name that is no EC2 type (components/lookups.py) before asking: what reaches
                # here is real (or newer than the SDK), and only its size is unknown offline.
                return {}, [("instanceType", f"size unknown offline: {a['instanceType']} is not in the offline size "
                                             "table of harness/mocks.py, so its memory and architecture cannot be told "
                                             "here (AWS tells them at deploy); plan with a listed type, or add it")]
            memory, arches = INSTANCE_TYPES[a["instanceType"]]
            return {"instanceType": a["instanceType"], "memorySize": memory, "supportedArchitectures": arches}, []
        if token == "aws:ec2/getVpc:getVpc":
            cidr = self.facts.vpc(a.get("id"), {EXISTING_VPC: EXISTING_VPC_CIDR})
            if cidr is None:
                return {}, [("id", f"no matching EC2 VPC found ({a.get('id')})")]
            return {"id": a["id"], "default": False, "cidrBlock": cidr}, []
        if token == "aws:ec2/getAmi:getAmi":
            pattern = next(f["values"][0] for f in a.get("filters", []) if f["name"] == "name")
            arch = next((f["values"][0] for f in a.get("filters", []) if f["name"] == "architecture"), "x86_64")
            self._image_arch[self._id("ami", pattern)] = arch  # RunInstances checks it against the type
            return {"id": self._id("ami", pattern), "name": pattern, "architecture": arch}, []
        raise NotImplementedError(f"the mocks do not answer {token}")
