import json

import pytest

from services.ingest.api_keys import PRIVILEGED_TYPES, ApiKeys, KeyScope
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
    assert keys.scope_for(None) is None and keys.scope_for("unknown") is None
    assert keys.scope_for("wécom") is None  # a non-ASCII key is a wrong key, not an error
    everything, wecom = keys.scope_for("all"), keys.scope_for("wecom")
    assert everything is not None and wecom is not None
    assert everything.may_write_source("ad") and everything.sees_customers
    assert wecom.may_write_source("wecom") and not wecom.may_write_source("ad")
    assert not wecom.sees_customers  # the older form's named sources: no customer ids
    # The platform's own source (points a campaign granted) only for a key that names it.
    assert not everything.may_write_source("campaign")
    assert ApiKeys({"crm": ["campaign"]}).scope_for("crm").may_write_source("campaign")  # type: ignore[union-attr]


def test_privileged_types_only_for_keys_that_name_them() -> None:
    keys = ApiKeys(
        {
            "trusted": ["*"],
            "ad": ["ad"],
            "crm": KeyScope(sources=["call_center"], event_types=["content.*", "consent.granted"]),
            "forms": KeyScope(sources=["ad"], identity_types=["device_id", "phone"]),
        }
    )
    trusted, ad, crm, forms = (keys.scope_for(k) for k in ("trusted", "ad", "crm", "forms"))
    assert trusted and ad and crm and forms
    for kind in sorted(PRIVILEGED_TYPES):
        assert trusted.may_write_type(kind) and not ad.may_write_type(kind)
    assert ad.may_write_type("ad.click") and ad.may_write_type("custom.anything")
    assert crm.may_write_type("consent.granted") and not crm.may_write_type("consent.revoked")
    assert crm.may_write_type("content.view") and not crm.may_write_type("ad.click")
    assert forms.forbidden_identities(["device_id", "phone", "unionid"]) == ["unionid"]
    assert ad.forbidden_identities(["unionid", "phone"]) == []


def test_keys_come_from_json_in_either_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "INGEST_API_KEYS",
        '{"k1": ["wecom"], "k2": {"sources": ["ad"], "event_types": ["ad.*"], "sees_customers": true}}',
    )
    keys = IngestSettings().ingest_api_keys
    assert keys["k1"] == ["wecom"]
    assert isinstance(keys["k2"], KeyScope) and keys["k2"].event_types == ["ad.*"]
    monkeypatch.setenv("INGEST_API_KEYS", '{"k": {"sources": ["ad"], "event_type": ["ad.*"]}}')
    with pytest.raises(ValueError, match="event_type"):
        IngestSettings()


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


def test_the_local_stack_adds_the_callers_keys_and_tokens_to_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    from stack.processes import OPS_TOKEN, TOUCHPOINT_KEY, common_service_env, ingest_api_keys, ops_tokens

    monkeypatch.delenv("INGEST_API_KEYS", raising=False)
    monkeypatch.delenv("OPS_TOKENS", raising=False)
    assert ingest_api_keys() == {TOUCHPOINT_KEY: ["*"]} and ops_tokens() == [OPS_TOKEN]
    monkeypatch.setenv("INGEST_API_KEYS", '{"ad-key": {"sources": ["ad"], "event_types": ["ad.*"]}}')
    monkeypatch.setenv("OPS_TOKENS", "li.wei:viewer:v-token")
    env = common_service_env()
    assert json.loads(env["INGEST_API_KEYS"]) == {
        TOUCHPOINT_KEY: ["*"],
        "ad-key": {"sources": ["ad"], "event_types": ["ad.*"]},
    }
    assert env["OPS_TOKENS"] == f"{OPS_TOKEN},li.wei:viewer:v-token"
    monkeypatch.setenv("INGEST_API_KEYS", '["not", "an", "object"]')
    with pytest.raises(SystemExit, match="JSON object"):
        ingest_api_keys()


def test_production_refuses_the_local_secrets_in_one_line_each(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from services.console.settings import ConsoleSettings
    from shared.settings import load_settings

    monkeypatch.setenv("DEPLOYMENT", "production")
    for name in ("INGEST_API_KEYS", "OPS_TOKENS", "PHONE_HASH_SALT", "CONSOLE_SESSION_SECRET"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit) as exited:
        load_settings(IngestSettings, "ingest")
    assert exited.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ingest: refusing to start: ")
    for setting in ("OPS_TOKENS", "PHONE_HASH_SALT", "INGEST_API_KEYS"):
        assert f"{setting} holds the local stack's development secret" in lines[0]
    assert "Traceback" not in lines[0]

    monkeypatch.setenv("OPS_TOKENS", "ops:admin:short")
    monkeypatch.setenv("PHONE_HASH_SALT", "a-salt-nobody-else-knows-0123456789")
    monkeypatch.setenv("INGEST_API_KEYS", '{"a-touchpoint-key-of-some-length": ["wecom"]}')
    with pytest.raises(SystemExit):
        load_settings(IngestSettings, "ingest")
    assert "OPS_TOKENS holds a secret shorter than 16 characters" in capsys.readouterr().err
    monkeypatch.setenv("OPS_TOKENS", "ops:admin:a-long-enough-ops-token")
    assert load_settings(IngestSettings, "ingest").deployment == "production"
    with pytest.raises(SystemExit):
        load_settings(ConsoleSettings, "console")  # no session secret
    assert "CONSOLE_SESSION_SECRET is unset" in capsys.readouterr().err
    monkeypatch.setenv("DEPLOYMENT", "local")
    monkeypatch.delenv("OPS_TOKENS")
    assert load_settings(IngestSettings, "ingest").ops_tokens == ("local-ops-token",)  # fine locally


async def test_readiness_fails_only_after_a_sustained_outage() -> None:
    from shared.http import Degraded, sustained_only

    now = [0.0]
    up = [True]

    async def dependency() -> None:
        if not up[0]:
            raise ConnectionError("broker away")

    check = sustained_only(dependency, grace_s=30, clock=lambda: now[0])
    up[0] = False
    with pytest.raises(ConnectionError):  # starting: not ready before the first success
        await check()
    up[0] = True
    await check()
    up[0] = False
    for at in (100.0, 110.0, 129.9):  # failing, but for less than the grace
        now[0] = at
        with pytest.raises(Degraded):
            await check()
    now[0] = 130.0
    with pytest.raises(ConnectionError):
        await check()
    up[0] = True
    await check()  # back: the next outage starts its own grace
    up[0], now[0] = False, 200.0
    with pytest.raises(Degraded):
        await check()
    immediate = sustained_only(dependency, grace_s=0, clock=lambda: now[0])
    up[0] = True
    await immediate()
    up[0] = False
    with pytest.raises(ConnectionError):
        await immediate()


def test_topic_replication_is_the_brokers_unless_set_and_must_allow_writes() -> None:
    from shared.settings import ServiceSettings
    from shared.topics import TopicPolicy

    assert ServiceSettings().topic_policy == TopicPolicy(-1, None)
    assert ServiceSettings(
        topic_replication_factor=3, topic_min_insync_replicas=2
    ).topic_policy == TopicPolicy(3, 2)
    with pytest.raises(ValueError, match="no write could succeed"):
        ServiceSettings(topic_replication_factor=2, topic_min_insync_replicas=3)
    with pytest.raises(ValueError, match="at least 1"):
        ServiceSettings(topic_replication_factor=0)
