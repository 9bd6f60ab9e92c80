"""The files of the release folder beyond the disclosure-controlled Parquet tables: open-data CSVs,
SDMX, code lists, the dataset card, the data package, the citation, the changelog and checksums.

Every writer reads only the released tables and the run's context, so the CLI and Dagster (which
both publish through ``icare.pipeline.publish``) write the same folder.
"""

from icare.release.folder import ReleaseContext, write_release_files

__all__ = ["ReleaseContext", "write_release_files"]
