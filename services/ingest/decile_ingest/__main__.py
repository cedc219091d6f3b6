from decile.config import load_settings
from decile.service import run
from decile_ingest.app import create_app
from decile_ingest.settings import IngestSettings

run(lambda: create_app(load_settings(IngestSettings)))
