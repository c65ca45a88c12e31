"""The WeCom sender: campaign actions on WeCom, delivered through WeCom's API (docs/wecom.md)."""
