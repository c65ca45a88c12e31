"""Kafka security settings (shared/kafka_security.py): each client library gets its own keyword
arguments from one setting, and an incomplete SASL setting is refused at start."""

from __future__ import annotations

import ssl

import faust
import pytest

from shared.kafka_security import PLAINTEXT, KafkaSecurity
from shared.settings import ServiceSettings
from shared.stream_worker import WorkerSettings, faust_config

SCRAM = KafkaSecurity("SASL_SSL", "SCRAM-SHA-512", "pd-user", "pd-password-1234567", None)


def test_plaintext_adds_nothing_to_any_client() -> None:
    assert PLAINTEXT.kafka_python() == {} and PLAINTEXT.aiokafka() == {} and PLAINTEXT.faust() is None
    assert ServiceSettings().kafka_security == PLAINTEXT


def test_sasl_over_tls_gives_every_library_the_user_and_a_verifying_context() -> None:
    python = SCRAM.kafka_python()
    assert python["security_protocol"] == "SASL_SSL" and python["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (python["sasl_plain_username"], python["sasl_plain_password"]) == (
        "pd-user",
        "pd-password-1234567",
    )
    assert python["ssl_check_hostname"] is True
    aio = SCRAM.aiokafka()
    assert (
        isinstance(aio["ssl_context"], ssl.SSLContext) and aio["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    )
    credentials = SCRAM.faust()
    assert isinstance(credentials, faust.SASLCredentials) and credentials.username == "pd-user"
    tls_only = KafkaSecurity("SSL").aiokafka()
    assert set(tls_only) == {"security_protocol", "ssl_context"}  # no SASL arguments
    assert isinstance(KafkaSecurity("SSL").faust(), faust.SSLCredentials)


def test_the_workers_faust_app_gets_the_credentials() -> None:
    settings = WorkerSettings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="pd-user",
        kafka_sasl_password="pd-password-1234567",
    )
    config = faust_config(settings, metrics_port=9999, table_dir="/tmp/x")
    assert config["broker_credentials"].mechanism.value == "PLAIN"
    assert "broker_credentials" not in faust_config(WorkerSettings(), metrics_port=9999, table_dir="/tmp/x")


def test_an_incomplete_sasl_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="needs KAFKA_SASL_MECHANISM"):
        ServiceSettings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="PLAIN")
    with pytest.raises(ValueError, match="go with KAFKA_SECURITY_PROTOCOL"):
        ServiceSettings(kafka_sasl_username="pd-user")
