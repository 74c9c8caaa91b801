"""The lessons as a book: ``python -m book`` executes every lesson and builds a static HTML site.

``conf.py`` is the Sphinx configuration (MyST-NB reads the percent-format lessons through
jupytext, executes them and caches the results), ``index.md`` the front page, ``build.py`` the
command. See the README's Development section.
"""
