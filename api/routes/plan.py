"""(being built for issue 13; see /tmp/team/context.md)"""

from fastapi import APIRouter

router = APIRouter()
