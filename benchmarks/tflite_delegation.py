"""Which ops of a .tflite file LiteRT's XNNPACK delegate takes, and which run
on TFLite's own kernels (per op name), as the interpreter plans them on this
CPU.

The interpreter keeps the original nodes beside the DELEGATE nodes that
replace them; a node belongs to a delegate partition when it is reached from
that partition's outputs without crossing its inputs. This is how the int8
file's attention matmuls were found on TFLite's reference kernel (issue #16
§2; benchmarks/README.md, "Integer-only int8").

    python benchmarks/tflite_delegation.py exports/sst2/tflite/model_int8.tflite [more.tflite ...]
"""

import argparse
import collections


def delegation(path, threads=1):
    """{"partitions": n, "delegated": Counter(op name), "builtin": Counter(op name)} for one file."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path, num_threads=threads)
    interpreter.allocate_tensors()
    nodes = interpreter._get_ops_details()
    original = {n["index"]: n for n in nodes if n["op_name"] != "DELEGATE"}
    producer = {t: n["index"] for n in original.values() for t in n["outputs"]}
    taken = set()
    partitions = [n for n in nodes if n["op_name"] == "DELEGATE"]
    for partition in partitions:
        boundary, stack, seen = set(partition["inputs"]), list(partition["outputs"]), set()
        while stack:
            tensor = stack.pop()
            if tensor in boundary or tensor in seen:
                continue
            seen.add(tensor)
            node = producer.get(tensor)
            if node is not None and node not in taken:
                taken.add(node)
                stack.extend(original[node]["inputs"])
    by_kernel = {"delegated": collections.Counter(), "builtin": collections.Counter()}
    for index, node in original.items():
        by_kernel["delegated" if index in taken else "builtin"][node["op_name"]] += 1
    return {"partitions": len(partitions), **by_kernel}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    for path in args.files:
        result = delegation(path, args.threads)
        print(f"{path}: {result['partitions']} XNNPACK partitions")
        for kind in ("delegated", "builtin"):
            ops = ", ".join(f"{name} x{n}" for name, n in result[kind].most_common())
            print(f"  {kind} ({sum(result[kind].values())} ops): {ops or '-'}")


if __name__ == "__main__":
    main()
