"""How every Kafka client of the platform authenticates and encrypts: plaintext (the local
stack), TLS with a CA, SASL (PLAIN, SCRAM-SHA-256/512) over plaintext or TLS — what managed Kafka
(MSK, CKafka, Alibaba's) asks for. One value, built from the settings (`ServiceSettings.kafka_security`),
gives each client library its own keyword arguments."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any, Literal

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


@dataclass(frozen=True)
class KafkaSecurity:
    protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    username: str | None = None
    password: str | None = None
    ssl_cafile: str | None = None  # None with TLS: the system's CAs

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def _sasl_kwargs(self) -> dict[str, Any]:
        if not self.sasl:
            return {}
        return {
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password,
        }

    def kafka_python(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's clients (admin, consumers, producers)."""
        if self.protocol == "PLAINTEXT":
            return {}
        tls = {"ssl_cafile": self.ssl_cafile, "ssl_check_hostname": True} if self.tls else {}
        return {"security_protocol": self.protocol, **self._sasl_kwargs(), **tls}

    def ssl_context(self) -> ssl.SSLContext | None:
        return ssl.create_default_context(cafile=self.ssl_cafile) if self.tls else None

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's producers and consumers."""
        if self.protocol == "PLAINTEXT":
            return {}
        tls = {"ssl_context": self.ssl_context()} if self.tls else {}
        return {"security_protocol": self.protocol, **self._sasl_kwargs(), **tls}

    def faust(self) -> Any:
        """Faust's `broker_credentials` (None: plaintext)."""
        import faust

        if self.sasl:
            return faust.SASLCredentials(
                username=self.username,
                password=self.password,
                mechanism=self.sasl_mechanism,
                ssl_context=self.ssl_context(),
            )
        if self.tls:
            return faust.SSLCredentials(self.ssl_context())
        return None


PLAINTEXT = KafkaSecurity()
