"""The FHIR connector on Bundle and NDJSON files written here (valid R4 resources)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from edge_node.pipeline.connectors import Connector, SourceMissing, open_connector
from edge_node.pipeline.records import RawReject, SourceBatch, SourceRow

Res = dict[str, Any]

PATIENT: Res = {
    "resourceType": "Patient",
    "id": "p1",
    "identifier": [
        {
            "use": "official",
            "system": "urn:oid:2.16.156.10011.1.3",
            "value": "110101196001011234",
        },
        {
            "type": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}
                ]
            },
            "system": "http://hospital.example/mrn",
            "value": "MRN0001",
        },
    ],
    "name": [{"use": "official", "family": "王", "given": ["建国"]}],
    "gender": "male",
    "birthDate": "1960-01-01",
    "telecom": [
        {"system": "phone", "value": "010-6512345", "use": "home"},
        {"system": "phone", "value": "13900000001", "use": "mobile"},
    ],
    "address": [
        {"use": "home", "state": "北京市", "city": "北京市", "line": ["东城区东长安街1号"]}
    ],
}
ENCOUNTER: Res = {
    "resourceType": "Encounter",
    "id": "e1",
    "identifier": [{"system": "http://hospital.example/visit", "value": "ZY2024001"}],
    "status": "finished",
    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
    "serviceType": {"text": "胸外科"},
    "subject": {"reference": "Patient/p1"},
    "period": {"start": "2024-03-01T08:00:00+08:00", "end": "2024-03-15"},
}
CONDITION: Res = {
    "resourceType": "Condition",
    "id": "c1",
    "clinicalStatus": {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                "code": "active",
            }
        ]
    },
    "category": [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                    "code": "encounter-diagnosis",
                }
            ]
        }
    ],
    "code": {
        "coding": [
            {"system": "http://snomed.info/sct", "code": "254637007", "display": "NSCLC"},
            {"system": "http://hl7.org/fhir/sid/icd-10", "code": "C34.1", "display": "上叶肺癌"},
        ]
    },
    "subject": {"reference": "Patient/p1"},
    "encounter": {"reference": "Encounter/e1"},
    "onsetDateTime": "2024-03-02",
}


def observation(oid: str, value: float | str, **extra: Any) -> Res:
    res: Res = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {
            "coding": [{"system": "http://loinc.org", "code": "2039-6", "display": "CEA"}],
            "text": "癌胚抗原",
        },
        "subject": {"reference": "Patient/p1"},
        "encounter": {"reference": "Encounter/e1"},
        "effectiveDateTime": "2024-03-03T09:30:00+08:00",
        "valueQuantity": {"value": value, "unit": "ng/mL", "system": "http://unitsofmeasure.org"},
        "referenceRange": [{"low": {"value": 0}, "high": {"value": 5}}],
    }
    res.update(extra)
    return res


def bundle(*resources: Res) -> Res:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources],
    }


def write(path: Path, doc: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # 5.20 must stay 5.20: JSON written by hand keeps the trailing zero
    path.write_text(json.dumps(doc, ensure_ascii=False).replace('"5.20"', "5.20"))
    return path


def fhir(path: Path, base: Path) -> Connector:
    return open_connector("fhir", {"kind": "fhir", "path": str(path)}, base)


def read_all(
    conn: Connector, table: str, watermark: str | None = None, batch_size: int = 5000
) -> tuple[list[SourceRow], list[RawReject], list[SourceBatch]]:
    batches = list(conn.read(table, key=None, watermark=watermark, batch_size=batch_size))
    return (
        [r for b in batches for r in b.rows],
        [r for b in batches for r in b.rejects],
        batches,
    )


def test_bundle_resources_validate_with_fhir_resources() -> None:
    from fhir.resources.R4B import get_fhir_model_class

    for res in (PATIENT, ENCOUNTER, CONDITION, observation("o1", 5.2)):
        get_fhir_model_class(res["resourceType"]).model_validate(res)


def test_bundle_is_flattened_to_target_columns(tmp_path: Path) -> None:
    write(
        tmp_path / "fhir" / "b1.json",
        bundle(PATIENT, ENCOUNTER, CONDITION, observation("o1", "5.20")),
    )
    conn = fhir(tmp_path / "fhir", tmp_path)
    assert conn.tables() == ["Condition", "Encounter", "Observation", "Patient"]
    assert conn.columns("Observation")[:3] == ["lab_id", "patient_id", "admission_id"]

    (patient,), _, _ = read_all(conn, "Patient")
    assert patient.key == "Patient/p1"
    assert {k: v for k, v in patient.values.items() if v is not None} == {
        "patient_id": "MRN0001",  # the MRN, not the resident ID nor the resource id
        "name": "王建国",
        "sex": "male",
        "birth_date": "1960-01-01",
        "phone": "13900000001",
        "address": "北京市东城区东长安街1号",
        "resident_id": "110101196001011234",
        "resource_id": "p1",
    }
    (enc,), _, _ = read_all(conn, "Encounter")
    assert enc.values["admission_id"] == "ZY2024001"
    assert enc.values["patient_id"] == "MRN0001"  # Patient/p1 resolved
    assert enc.values["admit_date"] == "2024-03-01T08:00:00+08:00"
    assert enc.values["discharge_date"] == "2024-03-15"
    assert enc.values["department"] == "胸外科"

    (cond,), _, _ = read_all(conn, "Condition")
    assert cond.key == "Condition/c1"
    assert (cond.values["icd10"], cond.values["diagnosis_text"]) == ("C34.1", "上叶肺癌")
    assert (cond.values["patient_id"], cond.values["admission_id"]) == ("MRN0001", "ZY2024001")
    assert cond.values["diagnosis_date"] == "2024-03-02"
    assert cond.values["diagnosis_type"] == "encounter-diagnosis"

    (obs,), _, _ = read_all(conn, "Observation")
    assert obs.values == {
        "lab_id": "o1",
        "patient_id": "MRN0001",
        "admission_id": "ZY2024001",
        "item_code": "2039-6",
        "item_name": "癌胚抗原",
        "value": "5.20",  # the number as written
        "unit": "ng/mL",
        "reference_range": "0-5",
        "result_date": "2024-03-03T09:30:00+08:00",
        "abnormal_flag": None,
        "resource_id": "o1",
    }


def test_invalid_resource_is_rejected_and_the_rest_loads(tmp_path: Path) -> None:
    bad = observation("o2", 7.5)
    del bad["code"]  # required
    worse = observation("o3", 1.0, effectiveDateTime="2024-13-45")
    write(
        tmp_path / "b.json",
        bundle(PATIENT, observation("o1", 5.2), bad, worse, observation("o4", 2)),
    )
    rows, rejects, _ = read_all(fhir(tmp_path / "b.json", tmp_path), "Observation")
    assert [r.key for r in rows] == ["Observation/o1", "Observation/o4"]
    assert [(r.key, r.code) for r in rejects] == [
        ("Observation/o2", "invalid_fhir"),
        ("Observation/o3", "invalid_fhir"),
    ]
    assert "code" in rejects[0].reason and "b.json entry 3" in rejects[0].reason
    assert "effectiveDateTime" in rejects[1].reason
    assert json.loads(rejects[0].raw)["id"] == "o2"


def test_ndjson_folder_resolves_references_across_files(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "Patient.ndjson").write_text(json.dumps(PATIENT, ensure_ascii=False) + "\n")
    lines = [
        json.dumps(observation("o1", 3.1)),
        "{broken json",
        "",
        json.dumps(observation("o2", 4)),
    ]
    (folder / "Observation.ndjson").write_text("\n".join(lines) + "\n")
    conn = fhir(folder, tmp_path)
    assert conn.tables() == ["Observation", "Patient"]
    rows, rejects, _ = read_all(conn, "Observation")
    assert [(r.key, r.values["patient_id"], r.values["value"]) for r in rows] == [
        ("Observation/o1", "MRN0001", "3.1"),
        ("Observation/o2", "MRN0001", "4"),
    ]
    # no Encounter in the folder: the reference's id
    assert rows[0].values["admission_id"] == "e1"
    assert [(r.code, r.raw) for r in rejects] == [("invalid_json", "{broken json")]
    assert "Observation.ndjson line 2" in rejects[0].reason
    # the broken line belongs to the Observation file only
    assert read_all(conn, "Patient")[1] == []


def test_file_that_is_not_json_is_rejected_in_each_table(tmp_path: Path) -> None:
    write(tmp_path / "f" / "a.json", bundle(PATIENT, observation("o1", 1)))
    (tmp_path / "f" / "b.json").write_text("<Bundle>xml?</Bundle>")
    conn = fhir(tmp_path / "f", tmp_path)
    for table in ("Patient", "Observation"):
        rows, rejects, _ = read_all(conn, table)
        assert len(rows) == 1
        assert [(r.key, r.code, r.raw) for r in rejects] == [
            ("b.json", "invalid_json", "<Bundle>xml?</Bundle>")
        ]


def test_watermark_picks_up_new_and_changed_files(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    write(
        folder / "a.json",
        bundle(PATIENT, observation("o1", 1), observation("o2", 2), observation("o3", 3)),
    )
    conn = fhir(folder, tmp_path)
    batches = conn.read("Observation", key=None, watermark=None, batch_size=1)
    first, second = next(batches), next(batches)
    assert [r.key for r in first.rows + second.rows] == ["Observation/o1", "Observation/o2"]
    rest, _, done = read_all(conn, "Observation", watermark=second.watermark)
    assert [r.key for r in rest] == ["Observation/o3"]
    mark = done[-1].watermark
    assert read_all(conn, "Observation", watermark=mark)[0] == []  # nothing new

    write(folder / "b.json", bundle(observation("o9", 9)))
    new, _, after = read_all(conn, "Observation", watermark=mark)
    assert [r.key for r in new] == ["Observation/o9"]

    write(folder / "a.json", bundle(PATIENT, observation("o1", 1.5)))  # changed: read again
    os.utime(folder / "a.json", ns=(1, 1))
    changed, _, _ = read_all(conn, "Observation", watermark=after[-1].watermark)
    assert [(r.key, r.values["value"]) for r in changed] == [("Observation/o1", "1.5")]


def test_medication_request_and_procedure(tmp_path: Path) -> None:
    med: Res = {
        "resourceType": "MedicationRequest",
        "id": "m1",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [
                {"system": "http://www.whocc.no/atc", "code": "L01XE03", "display": "erlotinib"}
            ],
            "text": "厄洛替尼片",
        },
        "subject": {"reference": "Patient/p1"},
        "encounter": {"reference": "Encounter/e1"},
        "authoredOn": "2024-03-04",
        "dosageInstruction": [
            {
                "timing": {
                    "repeat": {"boundsPeriod": {"start": "2024-03-05", "end": "2024-04-05"}}
                },
                "doseAndRate": [{"doseQuantity": {"value": 150, "unit": "mg"}}],
            }
        ],
    }
    proc: Res = {
        "resourceType": "Procedure",
        "id": "s1",
        "status": "completed",
        "code": {
            "coding": [
                {
                    "system": "http://hl7.org/fhir/sid/icd-9-cm",
                    "code": "32.41",
                    "display": "肺叶切除术",
                }
            ]
        },
        "subject": {"reference": "Patient/p1"},
        "encounter": {"reference": "Encounter/e1"},
        "performedPeriod": {
            "start": "2024-03-06T09:00:00+08:00",
            "end": "2024-03-06T12:00:00+08:00",
        },
    }
    write(tmp_path / "b.json", bundle(PATIENT, ENCOUNTER, med, proc))
    conn = fhir(tmp_path / "b.json", tmp_path)
    (m,), _, _ = read_all(conn, "MedicationRequest")
    assert {
        k: m.values[k]
        for k in (
            "order_id",
            "patient_id",
            "admission_id",
            "drug_name",
            "drug_code",
            "dose",
            "dose_unit",
            "start_date",
            "end_date",
        )
    } == {
        "order_id": "m1",
        "patient_id": "MRN0001",
        "admission_id": "ZY2024001",
        "drug_name": "厄洛替尼片",
        "drug_code": "L01XE03",
        "dose": "150",
        "dose_unit": "mg",
        "start_date": "2024-03-05",
        "end_date": "2024-04-05",
    }
    (p,), _, _ = read_all(conn, "Procedure")
    assert (p.values["procedure_code"], p.values["operation_name"]) == ("32.41", "肺叶切除术")
    assert p.values["operation_date"] == "2024-03-06T09:00:00+08:00"


def test_missing_types_and_paths_are_source_missing(tmp_path: Path) -> None:
    write(tmp_path / "b.json", bundle(PATIENT))
    conn = fhir(tmp_path / "b.json", tmp_path)
    with pytest.raises(SourceMissing, match="Observation resources"):
        list(conn.read("Observation", key=None, watermark=None))
    (tmp_path / "b.json").unlink()
    with pytest.raises(SourceMissing) as err:
        conn.tables()
    assert err.value.code == "source_missing"


def test_read_where_and_sample(tmp_path: Path) -> None:
    other = observation("o2", 2, subject={"reference": "Patient/p2"})
    write(tmp_path / "b.json", bundle(PATIENT, observation("o1", 1), other, observation("o3", 3)))
    conn = fhir(tmp_path / "b.json", tmp_path)
    found = list(conn.read_where("Observation", "patient_id", ["MRN0001"]))
    assert [r.key for b in found for r in b.rows] == ["Observation/o1", "Observation/o3"]
    assert all(b.watermark is None for b in found)
    assert [r.values["patient_id"] for r in conn.sample("Observation", 2)] == ["MRN0001", "p2"]
