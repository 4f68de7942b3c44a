"""The web pages: server-rendered Jinja2 templates, htmx for live parts, ECharts for charts."""
