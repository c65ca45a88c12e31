import pytest

from services.ingest.api_keys import ApiKeys
from services.ingest.settings import IngestSettings


def test_defaults_are_the_local_keys() -> None:
    settings = IngestSettings()
    assert settings.ingest_api_keys == {"local-touchpoint-key": ["*"]}
    assert settings.ops_tokens == ("local-ops-token",)
    assert settings.ingest_port == 8001


def test_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_API_KEYS", '{"k1": ["wecom", "app"]}')
    monkeypatch.setenv("OPS_TOKENS", "a, b,")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    settings = IngestSettings()
    assert settings.ingest_api_keys == {"k1": ["wecom", "app"]}
    assert settings.ops_tokens == ("a", "b")
    assert settings.kafka_bootstrap_servers == "kafka:9092"


def test_dedupe_window_cannot_be_set_below_seven_days(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEDUPE_TTL_S", "3600")
    with pytest.raises(ValueError):
        IngestSettings()


def test_the_join_grace_must_outlast_a_produce(monkeypatch: pytest.MonkeyPatch) -> None:
    assert IngestSettings().join_grace_s > IngestSettings().produce_timeout_s
    monkeypatch.setenv("PRODUCE_TIMEOUT_S", "10")
    monkeypatch.setenv("JOIN_GRACE_S", "10")
    with pytest.raises(ValueError, match="join_grace_s"):
        IngestSettings()


def test_keys_grant_sources() -> None:
    keys = ApiKeys({"all": ["*"], "wecom": ["wecom"]})
    assert keys.sources_for(None) is None
    assert keys.sources_for("unknown") is None
    assert keys.may_write(keys.sources_for("all"), "ad")
    assert keys.may_write(keys.sources_for("wecom"), "wecom")
    assert not keys.may_write(keys.sources_for("wecom"), "ad")


def test_channel_caps_come_as_json_and_name_messaging_channels_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from services.campaign.settings import CampaignSettings

    monkeypatch.setenv("CHANNEL_DAILY_CAPS", '{"wecom_1v1": 1, "sms": 2}')
    assert CampaignSettings().channel_daily_caps == {"wecom_1v1": 1, "sms": 2}
    for wrong in ('{"dealer": 1}', '{"wecom_1v1": 0}', '{"fax": 1}'):
        monkeypatch.setenv("CHANNEL_DAILY_CAPS", wrong)
        with pytest.raises(ValidationError):
            CampaignSettings()
    monkeypatch.delenv("CHANNEL_DAILY_CAPS")
    assert CampaignSettings().channel_daily_caps == {}
