"""The API's contract: pydantic request and response models of every operation, one module per resource, so that
`/openapi.json` documents every body the pages and integrations read (checked by
tests/integration/test_openapi_contract.py). Shared pieces (the problem+json error, GeoJSON geometry, binary
answers) are in `gridmap_api.schemas.common`."""
