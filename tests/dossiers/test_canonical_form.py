"""The canonical form of an event is what resends are compared by (its SHA-256 is stored with the
event): its bytes may never change, or every event stored before would look corrected when resent."""

from app.dossiers.ingestion.decoding import canonical, decode_event

RECEIVED = {
    "event_id": "kt-2023-000123-1",
    "dossier_code": "000.00.31.H56-230801-0001",
    "type": "received",
    "occurred_at": "2023-08-01T09:15:00+07:00",
    "procedure_code": "1.000894",
    "unit_code": "11680",
    "channel": "online",
    "online_level": "full",
    "lookup_secret": "482913",
    "fee_payable": True,
    "paid_online": True,
}
APOLOGY = {
    "event_id": 'sự-kiện-“2”-😀 "q"',
    "dossier_code": "HS/DN-1",
    "type": "apology_issued",
    "occurred_at": "2023-08-02T15:00:00.123456-03:30",
    "new_return_at": "2023-08-09T08:00:00+07:00",
    "revision": 3,
}


def test_a_reception_in_canonical_form_instants_in_utc_and_the_pin_hashed() -> None:
    payload, digest = canonical(decode_event(RECEIVED), "test-key")
    assert payload == (
        '{"event_id":"kt-2023-000123-1","dossier_code":"000.00.31.H56-230801-0001","type":"received",'
        '"occurred_at":"2023-08-01T02:15:00Z","procedure_code":"1.000894","unit_code":"11680",'
        '"channel":"online","online_level":"full","paid_online":true,"fee_payable":true,'
        '"lookup_secret":"hmac-sha256:3fece0b1d20d9ac1f0658e211afe8ce90b7f962c834cc4bf716a99f79440a49b"}'
    )
    assert digest == "edc239685585db124db4441059eef7b4c13779bb1df7d0885cb0309ee6f02fc1"


def test_text_kept_as_written_and_absent_fields_left_out() -> None:
    payload, digest = canonical(decode_event(APOLOGY), "test-key")
    assert payload == (
        '{"event_id":"sự-kiện-“2”-😀 \\"q\\"","dossier_code":"HS/DN-1","type":"apology_issued",'
        '"occurred_at":"2023-08-02T18:30:00.123456Z","new_return_at":"2023-08-09T01:00:00Z","revision":3}'
    )
    assert digest == "cd6696bf2889b1a0dc7a5788dc1bf3ccbe94926544daa48ebaa6bb47afcb0570"
