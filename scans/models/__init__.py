from scans.models.findings import Finding
from scans.models.images import Image, ImageLayer, Tag, TagEvent
from scans.models.packages import Package
from scans.models.registries import Registry, Repository
from scans.models.scans import ScanJob

__all__ = ["Finding", "Image", "ImageLayer", "Package", "Registry", "Repository", "ScanJob", "Tag", "TagEvent"]
