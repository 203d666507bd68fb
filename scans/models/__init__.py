from scans.models.findings import Finding
from scans.models.images import Image, ImageLayer, Tag, TagEvent
from scans.models.packages import Package
from scans.models.registries import Registry, Repository
from scans.models.scans import ScanJob
from scans.models.triage import Decision, DecisionEvent

__all__ = [
    "Decision",
    "DecisionEvent",
    "Finding",
    "Image",
    "ImageLayer",
    "Package",
    "Registry",
    "Repository",
    "ScanJob",
    "Tag",
    "TagEvent",
]
