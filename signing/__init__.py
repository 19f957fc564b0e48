"""Keys, envelope XML signatures, PAdES for PDFs, validation reports, TSA/OCSP/CRL, dev PKI.

``signing`` knows keys and bytes, not HTTP or storage. (Being built: see the signatures issue.)
"""
