"""Ray job: ImageBind extraction into a feature store (`dgnode extract`, same options).

    ray job submit --working-dir . -- python jobs/extract.py --manifest scan/manifest.parquet --store features/ --model huge --checkpoint /data/imagebind_huge.pth
"""

from _entry import run

if __name__ == "__main__":
    run("extract")
