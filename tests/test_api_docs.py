import httpx
from nicegui import app
from nicegui.testing import User


async def test_the_api_describes_itself_without_a_token(user: User) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url='http://herald.test') as anonymous:
        schema = (await anonymous.get('/api/openapi.json')).json()
        docs = await anonymous.get('/api/docs')
        script = await anonymous.get('/api/docs/assets/swagger-ui-bundle.js')
    assert schema['info']['title'] == 'Herald API'
    assert '/api/v1/templates' in schema['paths']
    assert all(path.startswith('/api/') for path in schema['paths']), 'pages and internal routes are not the API'
    assert schema['components']['securitySchemes']['bearer']['scheme'] == 'bearer'
    assert docs.status_code == 200 and '/api/openapi.json' in docs.text
    assert '/api/docs/assets/swagger-ui-bundle.js' in docs.text and 'cdn' not in docs.text, 'works offline'
    assert script.status_code == 200 and 'SwaggerUIBundle' in script.text
