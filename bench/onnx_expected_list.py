import sys,re
# reasons: the importer's message, made short and stable (no timings)
out=["# ONNX backend cases that do not pass, with the reason (tests/onnx/test_onnx_backend.c).",
     "# The test fails if a case listed here passes, so this list only shrinks.",
     "# Regenerate: build/release/bench_onnx_suite > r.txt; python3 bench/onnx_expected_list.py r.txt > tests/data/onnx_backend_expected_failures.txt"]
for l in open(sys.argv[1]):
    if not l.startswith("RESULT "): continue
    p=l.rstrip("\n").split(" ",4)
    name,res,why=p[1],p[2],(p[4] if len(p)>4 else "")
    if res=="pass": continue
    why=re.sub(r"/usr/share/libonnx-testdata/data/\S+/","",why)
    why=re.sub(r"^onnx: ","",why)
    out.append(f"{name}  {res}: {why}")
print("\n".join(out))
