from __future__ import annotations

from pydantic import Field

from shared.settings import ServiceSettings, weak_secrets


class ConsoleSettings(ServiceSettings):
    console_port: int = 8005
    # The ops APIs the console reads and writes (each called with the signed-in user's token).
    ingest_url: str = "http://127.0.0.1:8001"
    scoring_url: str = "http://127.0.0.1:8002"
    tagging_url: str = "http://127.0.0.1:8003"
    campaign_url: str = "http://127.0.0.1:8004"
    api_timeout_s: float = Field(default=5.0, gt=0)
    # Encrypts and signs the session cookie. Every replica needs the same secret; unset, each
    # process makes its own, so sessions end when it restarts (fine on one machine).
    console_session_secret: str | None = Field(default=None, min_length=32)
    session_hours: float = Field(default=12, gt=0, le=24 * 30)
    # Send cookies over HTTPS only: on wherever the console is behind TLS (production).
    cookie_secure: bool = False
    refresh_s: int = Field(default=10, ge=2, le=600, description="how often the overview refreshes")

    def unsafe_in_production(self) -> list[str]:
        problems = super().unsafe_in_production()
        if self.console_session_secret is None:
            problems.append("CONSOLE_SESSION_SECRET is unset: every replica needs the same secret")
        else:
            problems += weak_secrets("CONSOLE_SESSION_SECRET", [self.console_session_secret])
        return problems
