"""What goes into the wheel, beside the metadata in pyproject.toml.

The packages, and the migrations as ``fusion.db.migrations``: the source tree keeps them in
``migrations/`` at the top (where ``fusion.db.migrate`` finds them in a checkout or an editable
install), and a wheel carries them inside ``fusion`` so that ``pip install fusion-stage-hub``
can run ``fusion db upgrade`` too. pyproject.toml alone cannot map a folder to a package that
package discovery does not find, hence this file.
"""

from setuptools import find_packages, setup

MIGRATIONS = "fusion.db.migrations"

setup(
    packages=[
        *find_packages(include=["fusion*", "workers*", "api*", "schemas*", "console*"]),
        MIGRATIONS,
        f"{MIGRATIONS}.versions",
    ],
    package_dir={MIGRATIONS: "migrations"},
    package_data={
        MIGRATIONS: ["script.py.mako"],
        # The console's pages and the files it serves (htmx, its SSE extension, the style).
        "console": ["templates/*/*.html", "static/*"],
    },
)
