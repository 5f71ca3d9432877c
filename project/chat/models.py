from django.db import models


class Room(models.Model):
    name = models.SlugField(unique=True)
    title = models.CharField(max_length=100, blank=True)

    class Meta:
        permissions = [("join_room", "Can connect to rooms")]

    def __str__(self) -> str:
        return self.name
