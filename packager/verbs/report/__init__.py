"""``packager report``: ``make`` runs the verb (builds, measurements, files), ``measure`` computes the numbers and
the search, ``render`` draws the page and its pictures, ``sentis_real`` adds the real-Sentis column."""
