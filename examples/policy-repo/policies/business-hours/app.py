"""Component entry point (componentize-py builds from this module)."""
from verdict_sdk.component import export

from business_hours import Policy

WitWorld = export(Policy())
