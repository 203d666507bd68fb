import pytest

from scans.engine.targets import scan
from scans.models import Image
from scans.services.inventory import analysis_from_image, store_analysis
from tests.conftest import corpus_file


@pytest.mark.django_db
def test_store_and_read_back_an_inventory(tmp_path):
    analysis = scan(str(corpus_file("alpine311.oci.tar")), workdir=tmp_path)
    image = Image.objects.create(digest=analysis.image.manifest_digest)
    store_analysis(image, analysis)
    again = analysis_from_image(image)
    assert [p.purl for p in again.packages] == [p.purl for p in analysis.packages]
    assert [p.layer for p in again.packages] == [p.layer for p in analysis.packages]
    assert again.distro == analysis.distro
