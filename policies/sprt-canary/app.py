"""Component entry point (componentize-py builds from this module)."""
from verdict_sdk.component import export

from sprt_canary import SprtCanary

WitWorld = export(SprtCanary())
