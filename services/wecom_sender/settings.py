from __future__ import annotations

from pydantic import Field, HttpUrl

from shared.settings import ServiceSettings, weak_secrets


class WeComSenderSettings(ServiceSettings):
    wecom_sender_metrics_port: int = 9105  # /metrics, /healthz, /readyz
    wecom_sender_group: str = "pd-wecom-sender"  # its consumer group on campaign.actions.v1
    # WeCom's API (the local stack points it at its fake WeCom) and the corp's app credentials.
    wecom_api_base_url: HttpUrl = HttpUrl("https://qyapi.weixin.qq.com")
    wecom_corp_id: str = "wwlocal0000000001"
    wecom_corp_secret: str = "local-wecom-secret"
    # What a message task links to: the content's page, by its id.
    wecom_content_url: str = "https://brand.example/c/{content_id}"
    # invite_group: each group template's customer groups (chat ids, at most 5), joined through a
    # join way's QR code the sender makes once per template.
    wecom_group_chats: dict[str, list[str]] = Field(default_factory=dict)
    # Requests per second to WeCom's API, kept by the sender (WeCom limits apps; past its limit
    # it answers 45009, which is retried after a pause as well).
    wecom_requests_per_second: int = Field(default=20, ge=1, le=1000)
    # A retriable failure (WeCom busy, rate limited, a network error) is tried this many times in
    # all, waiting longer each time, before the action is dead-lettered as failed.
    wecom_max_attempts: int = Field(default=5, ge=1, le=20)
    wecom_retry_wait_s: float = Field(default=0.5, gt=0, le=60)
    wecom_request_timeout_s: float = Field(default=10.0, gt=0, le=60)

    def unsafe_in_production(self) -> list[str]:
        return [*super().unsafe_in_production(), *weak_secrets("WECOM_CORP_SECRET", [self.wecom_corp_secret])]
