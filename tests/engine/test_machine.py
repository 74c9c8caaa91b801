"""The machine description that travels with every figure."""

import json

from minires import machine


def test_describe_is_json_and_names_cpu_isa_and_blas():
    d = json.loads(json.dumps(machine.describe()))
    assert d["cpu"] and d["cores"] >= 1 and d["numpy"]
    assert set(d["isa"]) <= set(machine._ISA_FLAGS)
    from threadpoolctl import threadpool_info

    blas = [lib for lib in threadpool_info() if lib["user_api"] == "blas"]
    if blas:  # the kernel that ran is read from the BLAS itself, not guessed
        assert d["blas"]["library"] == blas[0]["internal_api"]
        assert d["blas"]["kernel"] == blas[0].get("architecture")
    assert d["cpu"] in machine.one_line(d)


def test_isa_flags_are_read_from_cpuinfo(tmp_path, monkeypatch):
    fake = tmp_path / "cpuinfo"
    fake.write_text(
        "processor : 0\nmodel name : Test CPU 9000\nflags : fpu sse4_2 avx2 fma avx512f\n\n"
        "processor : 1\nmodel name : Test CPU 9000\nflags : fpu sse4_2 avx2 fma avx512f\n"
    )
    real_open = open
    monkeypatch.setattr(
        "builtins.open", lambda p, *a, **k: real_open(fake if p == "/proc/cpuinfo" else p, *a, **k)
    )
    model, isa = machine._cpuinfo()
    assert model == "Test CPU 9000" and isa == ["sse4_2", "avx2", "fma", "avx512f"]
