"""TensorZero's Rust gateway in front of an OpenAI-compatible upstream, for ``bench/gateway.py``.

Runs from TensorZero's own venv (``bench/.venvs/tensorzero``, ``pip install tensorzero==2026.6.0``): the
standalone gateway ships only as a Docker image, so its HTTP server is started inside this Python process
through the package's internal ``_start_http_gateway`` (as ``tensorzero.patch_openai_client`` does).
Observability is off (no ClickHouse, PostgreSQL or Valkey); one model, ``fake``, routed to ``--upstream``.

The gateway binds 127.0.0.1 on a port of its own choosing; its OpenAI-compatible base URL (ending in
``/openai/v1``) is written to ``--url-file`` once it serves, and it serves until this process is killed.
Clients call ``<base URL>/chat/completions`` with model ``tensorzero::model_name::fake``::

    bench/.venvs/tensorzero/bin/python bench/tensorzero_gateway.py \\
        --upstream http://127.0.0.1:9100/v1 --url-file /tmp/tz.url
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from pathlib import Path

import tensorzero

CONFIG = """\
[gateway]
observability.enabled = false

[models.fake]
routing = ["fake"]

[models.fake.providers.fake]
type = "openai"
model_name = "gpt-4o-mini"
api_base = "{upstream}/"
api_key_location = "none"
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:9100/v1")
    parser.add_argument("--url-file", required=True, help="where to write the gateway's base URL")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tensorzero-") as tmp:
        config = Path(tmp) / "tensorzero.toml"
        config.write_text(CONFIG.format(upstream=args.upstream.rstrip("/")))
        gateway = tensorzero._start_http_gateway(
            config_file=str(config),
            clickhouse_url=None,
            postgres_url=None,
            valkey_url=None,
            async_setup=False,
        )
        url_file = Path(args.url_file)
        partial = url_file.with_suffix(".partial")
        partial.write_text(gateway.base_url)
        partial.replace(url_file)  # whole or absent: the reader never sees half a URL
        print(f"TensorZero gateway at {gateway.base_url}", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a clean exit removes the config folder
        try:
            signal.pause()
        finally:
            gateway.close()


if __name__ == "__main__":
    main()
