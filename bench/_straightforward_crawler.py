"""The crawler most students write: FastAPI, httpx and asyncio.gather. The baseline of
bench/crawler_10k.py, written as a student would, honestly, without the reference's care:
one httpx.AsyncClient per task with its default settings, gather over every URL at once, no
limit of its own, a background task per POST. It is not a model answer.

Run: python bench/_straightforward_crawler.py [--port 8888]
"""

import argparse
import asyncio
import uuid
from typing import Annotated

import httpx
import uvicorn
from fastapi import BackgroundTasks, Body, FastAPI, HTTPException

app = FastAPI()
tasks: dict[str, dict] = {}


async def fetch(client: httpx.AsyncClient, url: str) -> int | None:
    if "://" not in url:
        url = "http://" + url
    try:
        response = await client.get(url)
        return response.status_code
    except httpx.HTTPError:
        return None


async def crawl(task_id: str, urls: list[str]) -> None:
    async with httpx.AsyncClient() as client:
        results = await asyncio.gather(*(fetch(client, url) for url in urls))
    tasks[task_id]["result"] = list(results)
    tasks[task_id]["status"] = "ready"


@app.post("/api/v1/tasks/", status_code=201)
async def create_task(urls: Annotated[list[str], Body()],
                      background_tasks: BackgroundTasks) -> dict:
    task_id = str(uuid.uuid4())
    tasks[task_id] = {"id": task_id, "status": "running", "result": None}
    background_tasks.add_task(crawl, task_id, urls)
    return tasks[task_id]


@app.get("/api/v1/tasks/{task_id}")
async def get_task(task_id: str) -> dict:
    if task_id not in tasks:
        raise HTTPException(status_code=404, detail="task not found")
    return tasks[task_id]


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8888)
    uvicorn.run(app, host="127.0.0.1", port=parser.parse_args().port)
