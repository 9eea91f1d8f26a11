# The togai-engine server for teams and CI outside the developer machine (see docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY togai_engine ./togai_engine
COPY mcp_server ./mcp_server
RUN pip install --no-cache-dir . && useradd --create-home togai
USER togai
EXPOSE 8000
CMD ["togai-engine", "serve", "--transport", "http", "--host", "0.0.0.0", "--port", "8000"]
