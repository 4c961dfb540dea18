#!/usr/bin/env python3
"""The example server's downloader: fetches the weights from a model registry (any HTTP server)
into the models folder, verifying nothing, as many servers do at start. download.py URL DEST"""
import os
import sys
import urllib.request

url, dest = sys.argv[1], sys.argv[2]
data = urllib.request.urlopen(url, timeout=5).read()
with open(dest + ".part", "wb") as f:
    f.write(data)
os.replace(dest + ".part", dest)
