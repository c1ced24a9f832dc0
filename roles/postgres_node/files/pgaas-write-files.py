"""Write secret files into one directory: {file name: content} as JSON on stdin, the directory as the argument.
The directory is made 0700; only files whose content differs are rewritten, each 0600, written whole then renamed.
Prints "changed" or "ok". (Run with python3 -c, the content never on a command line.)"""
import json
import os
import sys
import tempfile

directory = sys.argv[1]
files = json.load(sys.stdin)
changed = False
os.makedirs(directory, mode=0o700, exist_ok=True)
os.chmod(directory, 0o700)
for name, content in files.items():
    path = os.path.join(directory, os.path.basename(name))
    try:
        with open(path) as f:
            same = f.read() == content
    except FileNotFoundError:
        same = False
    if not same:
        fd, tmp = tempfile.mkstemp(dir=directory)  # 0600
        with os.fdopen(fd, "w") as f:
            f.write(content)
        os.replace(tmp, path)
        changed = True
print("changed" if changed else "ok")
