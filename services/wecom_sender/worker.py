"""`pd-wecom-sender` / `python -m services.wecom_sender.worker`: deliver campaign actions on WeCom."""

from __future__ import annotations

from shared.clock import clock_of
from shared.http import serve
from shared.logging import configure_logging
from shared.settings import load_settings

from .app import create_app
from .settings import WeComSenderSettings


def main() -> None:
    settings = load_settings(WeComSenderSettings, "wecom-sender")
    configure_logging("wecom-sender", settings.log_level)
    app = create_app(settings, clock=clock_of(settings))
    serve(app, settings.http_host, settings.wecom_sender_metrics_port)


if __name__ == "__main__":
    main()
