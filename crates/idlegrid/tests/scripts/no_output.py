# Exits 0 and writes nothing into output/.
import os
os.listdir("input")
